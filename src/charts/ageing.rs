//! The break ageing: open reconciliation breaks by age, one bar per age bucket, its critical
//! part hatched; the count and the amounts per currency written under each bar.

use super::svg::{axis_top, nice_step, scale, value_axis, Anchor, Fill, Svg};
use crate::domain::Currency;
use crate::store::charts::{BreakAge, AGE_BUCKETS};
use railgate_rail::money::format_minor;
use std::collections::BTreeMap;

const WIDTH: i64 = 640;
const HEIGHT: i64 = 400;
const LEFT: i64 = 110;
const TOP: i64 = 70;
const PLOT_H: i64 = 200;

#[derive(Default)]
struct Bucket {
    count: i64,
    critical: i64,
    /// Amount per currency (`None`: breaks that carry no amount).
    amounts: BTreeMap<String, i64>,
}

/// The picture of `rows` (as `store::charts::break_ageing` reads them), as of `at`.
pub fn break_ageing(rows: &[BreakAge], at: chrono::DateTime<chrono::Utc>) -> String {
    let mut buckets: Vec<Bucket> = AGE_BUCKETS.iter().map(|_| Bucket::default()).collect();
    for r in rows {
        let Some(b) = buckets.get_mut(r.bucket) else {
            continue;
        };
        b.count = b.count.saturating_add(r.count);
        if r.critical {
            b.critical = b.critical.saturating_add(r.count);
        }
        if let Some(c) = &r.currency {
            let a = b.amounts.entry(c.clone()).or_insert(0);
            *a = a.saturating_add(r.amount_minor);
        }
    }
    let total: i64 = buckets.iter().fold(0, |n, b| n.saturating_add(b.count));
    let title = format!(
        "Open reconciliation breaks by age: {total} as of {}",
        at.format("%Y-%m-%d %H:%M UTC")
    );
    let mut svg = Svg::new(
        "ageing",
        WIDTH,
        HEIGHT,
        &title,
        "One bar per age bucket (days since the break was opened): its height is the number \
         of open breaks, its hatched part the critical ones. The count and the amounts per \
         currency are written under each bar.",
    );
    svg.heading(10, 20, &title);
    svg.swatch(10, 45, Fill::Hatch, "critical");
    svg.swatch(130, 45, Fill::Outline, "other open breaks");
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    let step = nice_step(max, 4);
    let top = axis_top(max, step);
    let plot_w = WIDTH.saturating_sub(LEFT).saturating_sub(20);
    let bottom = TOP.saturating_add(PLOT_H);
    value_axis(
        &mut svg,
        LEFT,
        bottom,
        PLOT_H,
        plot_w,
        top,
        step,
        "Open breaks (count)",
        |v| v.to_string(),
    );
    let slot = plot_w / 4;
    for (i, ((label, _, _), b)) in AGE_BUCKETS.iter().zip(&buckets).enumerate() {
        let x = LEFT
            .saturating_add(i64::try_from(i).unwrap_or(0).saturating_mul(slot))
            .saturating_add(slot / 4);
        let w = slot / 2;
        let h_all = scale(b.count, top, PLOT_H);
        let h_crit = scale(b.critical, top, PLOT_H);
        let other = b.count.saturating_sub(b.critical);
        svg.rect(
            x,
            bottom.saturating_sub(h_all),
            w,
            h_all.saturating_sub(h_crit),
            Fill::Outline,
            &format!("{label}: {other} other open breaks"),
        );
        svg.rect(
            x,
            bottom.saturating_sub(h_crit),
            w,
            h_crit,
            Fill::Hatch,
            &format!("{label}: {} critical", b.critical),
        );
        let mid = x.saturating_add(w / 2);
        svg.text(
            mid,
            bottom.saturating_sub(h_all).saturating_sub(6),
            &b.count.to_string(),
            Anchor::Middle,
        );
        svg.text(mid, bottom.saturating_add(16), label, Anchor::Middle);
        svg.text(
            mid,
            bottom.saturating_add(32),
            &format!(
                "{} {}, {} critical",
                b.count,
                if b.count == 1 { "break" } else { "breaks" },
                b.critical
            ),
            Anchor::Middle,
        );
        let mut y = bottom.saturating_add(48);
        for (currency, minor) in &b.amounts {
            let value = match currency.parse::<Currency>() {
                Ok(c) => format_minor(*minor, c),
                Err(_) => format!("{minor} (minor units)"),
            };
            svg.text(mid, y, &format!("{currency} {value}"), Anchor::Middle);
            y = y.saturating_add(14);
        }
    }
    let currencies = buckets.iter().map(|b| b.amounts.len()).max().unwrap_or(0);
    let below = i64::try_from(currencies).unwrap_or(0).saturating_mul(14);
    svg.text(
        LEFT.saturating_add(plot_w / 2),
        bottom
            .saturating_add(56)
            .saturating_add(below)
            .min(HEIGHT.saturating_sub(6)),
        "Age since the break was opened (days)",
        Anchor::Middle,
    );
    svg.finish()
}
