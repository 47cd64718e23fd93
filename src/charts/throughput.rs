//! A payroll's throughput: lines sent to their rail and lines finished (completed, failed,
//! cancelled) per minute, from the first line sent. Two lines told apart by their dash and
//! marker (solid with dots, dashed with squares); totals and peaks written in the heading.

use super::svg::{axis_top, nice_step, scale, value_axis, Anchor, Marker, Svg};
use crate::store::charts::MinuteCount;
use chrono::{DateTime, Utc};

/// Points drawn at most: a longer run is drawn in buckets of several minutes.
pub const MAX_POINTS: i64 = 240;

const WIDTH: i64 = 780;
const HEIGHT: i64 = 380;
const LEFT: i64 = 110;
const TOP: i64 = 80;
const PLOT_H: i64 = 220;

/// The picture of a payroll's `minutes` (as `store::charts::payroll_throughput` reads them).
pub fn payroll_throughput(payroll: &str, minutes: &[MinuteCount]) -> String {
    let first = minutes.iter().map(|m| m.minute).min().unwrap_or(0);
    let last = minutes.iter().map(|m| m.minute).max().unwrap_or(0);
    let span = last.saturating_sub(first).saturating_add(1);
    // Minutes per point: 1 unless the run is longer than MAX_POINTS minutes.
    let width = span
        .saturating_add(MAX_POINTS.saturating_sub(1))
        .checked_div(MAX_POINTS)
        .unwrap_or(1)
        .max(1);
    let points = span
        .saturating_add(width.saturating_sub(1))
        .checked_div(width)
        .unwrap_or(1)
        .max(1);
    let mut sent = vec![0i64; usize::try_from(points).unwrap_or(1)];
    let mut finished = sent.clone();
    for m in minutes {
        let i = m
            .minute
            .saturating_sub(first)
            .checked_div(width)
            .and_then(|i| usize::try_from(i).ok());
        if let (Some(s), Some(f)) = (
            i.and_then(|i| sent.get_mut(i)),
            i.and_then(|i| finished.get_mut(i)),
        ) {
            *s = s.saturating_add(m.sent);
            *f = f.saturating_add(m.finished);
        }
    }
    let total = |v: &[i64]| v.iter().fold(0i64, |n, x| n.saturating_add(*x));
    let peak = |v: &[i64]| v.iter().copied().max().unwrap_or(0);
    let per = if width == 1 {
        "per minute".to_owned()
    } else {
        format!("per {width} minutes")
    };
    let start: DateTime<Utc> = crate::store::from_micros(first.saturating_mul(60_000_000));
    let title = format!("Payroll {payroll}: lines {per}");
    let mut svg = Svg::new(
        "throughput",
        WIDTH,
        HEIGHT,
        &title,
        "Lines of the payroll sent to their rail (solid line, dots) and lines that reached a \
         final state (dashed line, squares), counted per time bucket from the first line sent.",
    );
    svg.heading(10, 20, &title);
    svg.text(
        10,
        40,
        &format!(
            "Sent: {} lines, peak {} {per}. Finished: {} lines, peak {} {per}. Start {}.",
            total(&sent),
            peak(&sent),
            total(&finished),
            peak(&finished),
            start.format("%Y-%m-%d %H:%M UTC")
        ),
        Anchor::Start,
    );
    let plot_w = WIDTH.saturating_sub(LEFT).saturating_sub(20);
    let bottom = TOP.saturating_add(PLOT_H);
    // The legend: a stroke and a marker per series.
    svg.line((10, 58), (40, 58), false, false);
    svg.marker(25, 58, Marker::Circle, "sent");
    svg.text(46, 62, "sent to the rail", Anchor::Start);
    svg.line((200, 58), (230, 58), true, false);
    svg.marker(215, 58, Marker::Square, "finished");
    svg.text(
        236,
        62,
        "finished (completed, failed, cancelled)",
        Anchor::Start,
    );
    let max = peak(&sent).max(peak(&finished));
    let step = nice_step(max, 4);
    let top = axis_top(max, step);
    value_axis(
        &mut svg,
        LEFT,
        bottom,
        PLOT_H,
        plot_w,
        top,
        step,
        &format!("Lines {per}"),
        |v| v.to_string(),
    );
    let x_of = |i: i64| {
        let denom = points.saturating_sub(1).max(1);
        LEFT.saturating_add(scale(i, denom, plot_w))
    };
    for (series, marker, dashed, name) in [
        (&sent, Marker::Circle, false, "sent"),
        (&finished, Marker::Square, true, "finished"),
    ] {
        let pts: Vec<(i64, i64)> = series
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let i = i64::try_from(i).unwrap_or(0);
                (x_of(i), bottom.saturating_sub(scale(*v, top, PLOT_H)))
            })
            .collect();
        svg.polyline(&pts, dashed);
        for (i, ((x, y), v)) in pts.iter().zip(series.iter()).enumerate() {
            let at = i64::try_from(i).unwrap_or(0).saturating_mul(width);
            svg.marker(*x, *y, marker, &format!("+{at} min: {v} lines {name}"));
        }
    }
    let label_every = points.saturating_add(7) / 8;
    for i in 0..points {
        if i.checked_rem(label_every) == Some(0) {
            let at = i.saturating_mul(width);
            svg.text(
                x_of(i),
                bottom.saturating_add(16),
                &format!("+{at}"),
                Anchor::Middle,
            );
        }
    }
    svg.text(
        LEFT.saturating_add(plot_w / 2),
        bottom.saturating_add(36),
        "Minutes since the first line was sent",
        Anchor::Middle,
    );
    svg.finish()
}
