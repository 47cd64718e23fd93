//! Per day: instructed vs confirmed vs settled amounts, one panel per rail, programme,
//! direction and currency (amounts only add within a currency). Each day has three bars told
//! apart by their fill (outline, hatching, solid); each panel's heading gives the period's
//! exact totals, and every bar its exact amount as a tooltip.

use super::svg::{axis_top, nice_step, scale, value_axis, Anchor, Fill, Svg};
use crate::domain::Currency;
use crate::store::charts::{DayFlow, MAX_DAYS};
use chrono::NaiveDate;
use railgate_rail::money::format_minor;
use std::collections::BTreeMap;

/// Panels drawn at most; the rest are named in a note (narrow the picture by rail or
/// programme to see them).
pub const MAX_PANELS: usize = 12;

const WIDTH: i64 = 780;
const PANEL: i64 = 230;
const LEFT: i64 = 110;
const RIGHT: i64 = 20;
const HEAD: i64 = 50;

const SERIES: [(&str, Fill); 3] = [
    ("instructed", Fill::Outline),
    ("confirmed by the rail", Fill::Hatch),
    ("settled on a statement", Fill::Solid),
];

type Group = (String, String, String, String);

fn amount(minor: i64, currency: &str) -> String {
    match currency.parse::<Currency>() {
        Ok(c) => format_minor(minor, c),
        Err(_) => format!("{minor} (minor units)"),
    }
}

/// The picture of `rows` over `from..=to` (at most [`MAX_DAYS`] days).
pub fn daily_flows(rows: &[DayFlow], from: NaiveDate, to: NaiveDate) -> String {
    let days = to
        .signed_duration_since(from)
        .num_days()
        .saturating_add(1)
        .clamp(1, MAX_DAYS);
    let mut groups: BTreeMap<Group, BTreeMap<NaiveDate, [i64; 3]>> = BTreeMap::new();
    for r in rows {
        let key = (
            r.direction.clone(),
            r.rail.clone(),
            r.programme.clone(),
            r.currency.clone(),
        );
        let day = groups
            .entry(key)
            .or_default()
            .entry(r.day)
            .or_insert([0; 3]);
        for (slot, v) in
            day.iter_mut()
                .zip([r.instructed_minor, r.confirmed_minor, r.settled_minor])
        {
            *slot = slot.saturating_add(v);
        }
    }
    let shown = groups.len().clamp(1, MAX_PANELS);
    let more = groups.len().saturating_sub(MAX_PANELS);
    let panels = i64::try_from(shown).unwrap_or(1);
    let height = HEAD
        .saturating_add(panels.saturating_mul(PANEL))
        .saturating_add(if more > 0 { 30 } else { 10 });
    let title = format!("Payments per day, {from} to {to}: instructed, confirmed, settled");
    let mut svg = Svg::new(
        "flows",
        WIDTH,
        height,
        &title,
        "Per day the payments were instructed (UTC), by rail, programme, direction and \
         currency: the amount instructed (outlined bar), the part the rail confirmed (hatched \
         bar) and the part a statement settled (solid bar).",
    );
    svg.heading(10, 20, &title);
    let mut x = 10;
    for (label, fill) in SERIES {
        svg.swatch(x, 40, fill, label);
        x = x.saturating_add(210);
    }
    if groups.is_empty() {
        svg.text(
            WIDTH / 2,
            HEAD.saturating_add(PANEL / 2),
            &format!("No payments were instructed from {from} to {to}."),
            Anchor::Middle,
        );
    }
    let mut top = HEAD;
    for (group, by_day) in groups.iter().take(MAX_PANELS) {
        panel(&mut svg, top, group, by_day, from, days);
        top = top.saturating_add(PANEL);
    }
    if more > 0 {
        svg.text(
            10,
            top.saturating_add(20),
            &format!("{more} more groups are not drawn: choose a rail or a programme."),
            Anchor::Start,
        );
    }
    svg.finish()
}

fn panel(
    svg: &mut Svg,
    top: i64,
    (direction, rail, programme, currency): &Group,
    by_day: &BTreeMap<NaiveDate, [i64; 3]>,
    from: NaiveDate,
    days: i64,
) {
    let mut totals = [0i64; 3];
    let mut max = 0i64;
    for v in by_day.values() {
        for (t, x) in totals.iter_mut().zip(v) {
            *t = t.saturating_add(*x);
            max = max.max(*x);
        }
    }
    let [ti, tc, ts] = totals;
    svg.heading(
        10,
        top.saturating_add(22),
        &format!("{direction}s on rail {rail}, programme {programme}, {currency}"),
    );
    svg.text(
        10,
        top.saturating_add(40),
        &format!(
            "Totals: instructed {}, confirmed {}, settled {} {currency}",
            amount(ti, currency),
            amount(tc, currency),
            amount(ts, currency)
        ),
        Anchor::Start,
    );
    let plot_w = WIDTH.saturating_sub(LEFT).saturating_sub(RIGHT);
    let plot_h = PANEL.saturating_sub(110);
    let bottom = top.saturating_add(50).saturating_add(plot_h);
    let step = nice_step(max, 4);
    let axis = axis_top(max, step);
    value_axis(
        svg,
        LEFT,
        bottom,
        plot_h,
        plot_w,
        axis,
        step,
        &format!("Amount ({currency})"),
        |v| amount(v, currency),
    );
    let slot = plot_w.checked_div(days).unwrap_or(plot_w).max(4);
    let bar = (slot.saturating_sub(2) / 3).max(1);
    let label_every = days.saturating_add(7) / 8;
    for i in 0..days {
        let Some(day) = from.checked_add_signed(chrono::Duration::days(i)) else {
            break;
        };
        let x0 = LEFT
            .saturating_add(i.saturating_mul(slot))
            .saturating_add(1);
        let figures = by_day.get(&day).copied().unwrap_or([0; 3]);
        for (k, ((name, fill), v)) in SERIES.iter().zip(figures).enumerate() {
            let h = scale(v, axis, plot_h);
            let x = x0.saturating_add(i64::try_from(k).unwrap_or(0).saturating_mul(bar));
            let tip = format!("{day} {name}: {} {currency}", amount(v, currency));
            svg.rect(x, bottom.saturating_sub(h), bar, h, *fill, &tip);
        }
        if i.checked_rem(label_every) == Some(0) {
            svg.text(
                x0.saturating_add(slot / 2),
                bottom.saturating_add(16),
                &day.format("%m-%d").to_string(),
                Anchor::Middle,
            );
        }
    }
    svg.text(
        LEFT.saturating_add(plot_w / 2),
        bottom.saturating_add(34),
        "Day the payments were instructed (UTC, month-day)",
        Anchor::Middle,
    );
}
