//! The console's pictures, as server-rendered SVG that reads on paper: every series is told
//! apart by its fill, dash or marker as well as by its label, every axis is labelled, every
//! label is text, and the exact figures are written out (headings, totals, tooltips).
//!
//! - [`flows::daily_flows`]: per day, instructed vs confirmed vs settled amounts per rail,
//!   programme, direction and currency;
//! - [`ageing::break_ageing`]: open reconciliation breaks by age;
//! - [`throughput::payroll_throughput`]: a payroll's lines per minute.
//!
//! The figures come from `store::charts` (summed by the database, along an index, over a
//! bounded range). Money stays in integer minor units, printed as decimals of its currency;
//! only a bar's height is computed from it, in integer arithmetic (`svg::scale`).

pub mod ageing;
pub mod flows;
pub mod svg;
pub mod throughput;

/// The media type of every picture.
pub const CONTENT_TYPE: &str = "image/svg+xml";

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]
mod tests {
    use crate::store::charts::{BreakAge, DayFlow, MinuteCount};
    use chrono::NaiveDate;
    use quick_xml::events::Event;
    use quick_xml::Reader;

    /// Parses the whole document (an error fails the test) and returns its elements' names
    /// and its text.
    fn parse(svg: &str) -> (Vec<String>, String) {
        let mut reader = Reader::from_str(svg);
        reader.config_mut().check_end_names = true;
        let mut names = Vec::new();
        let mut text = String::new();
        let mut depth = 0i64;
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    depth += 1;
                    names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                }
                Ok(Event::Empty(e)) => {
                    names.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                }
                Ok(Event::End(_)) => {
                    depth -= 1;
                    text.push('\n');
                }
                Ok(Event::Text(t)) => {
                    text.push_str(&t.decode().unwrap_or_else(|e| panic!("{e}")));
                }
                Ok(Event::GeneralRef(r)) => {
                    let name = r.decode().unwrap_or_else(|e| panic!("{e}"));
                    let c = quick_xml::escape::resolve_predefined_entity(&name)
                        .unwrap_or_else(|| panic!("unknown entity {name}"));
                    text.push_str(c);
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
            }
        }
        assert_eq!(depth, 0, "every element is closed");
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        (names, text)
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default()
    }

    fn flow(d: u32, rail: &str, currency: &str, figures: [i64; 3]) -> DayFlow {
        DayFlow {
            day: day(d),
            rail: rail.into(),
            programme: "maternity".into(),
            direction: "disbursement".into(),
            currency: currency.into(),
            instructed_count: 3,
            instructed_minor: figures[0],
            confirmed_minor: figures[1],
            settled_minor: figures[2],
        }
    }

    #[test]
    fn daily_flows_are_well_formed_and_carry_the_exact_amounts() {
        let rows = [
            flow(1, "mpesa", "KES", [250_050, 200_000, 150_000]),
            flow(3, "mpesa", "KES", [100_000, 100_000, 0]),
            flow(2, "bank<&>", "UGX", [7_000_000, 6_999_999, 0]),
        ];
        let svg = super::flows::daily_flows(&rows, day(1), day(7));
        let (names, text) = parse(&svg);
        // Totals in each currency's own decimals; UGX has none.
        assert!(
            text.contains("instructed 3500.50, confirmed 3000.00, settled 1500.00 KES"),
            "{text}"
        );
        assert!(
            text.contains("instructed 7000000, confirmed 6999999, settled 0 UGX"),
            "{text}"
        );
        // Every bar names its exact figure; outside text is escaped, never markup.
        assert!(text.contains("2026-11-01 confirmed by the rail: 2000.00 KES"));
        assert!(text.contains("rail bank<&>"));
        // Labelled axes, a legend, text as text.
        assert!(text.contains("Amount (KES)") && text.contains("Day the payments were instructed"));
        assert!(text.contains("instructed") && text.contains("settled on a statement"));
        assert!(names.iter().filter(|n| *n == "text").count() > 10);
        assert!(svg.contains("url(#flows-hatch)"));
    }

    #[test]
    fn an_empty_period_is_said_in_words() {
        let svg = super::flows::daily_flows(&[], day(1), day(2));
        let (_, text) = parse(&svg);
        assert!(text.contains("No payments were instructed from 2026-11-01 to 2026-11-02."));
    }

    #[test]
    fn break_ageing_is_well_formed_and_counts_every_bucket() {
        let rows = [
            BreakAge {
                bucket: 0,
                critical: true,
                currency: Some("TZS".into()),
                count: 2,
                amount_minor: 500_000,
            },
            BreakAge {
                bucket: 0,
                critical: false,
                currency: Some("TZS".into()),
                count: 3,
                amount_minor: 125,
            },
            BreakAge {
                bucket: 3,
                critical: false,
                currency: None,
                count: 1,
                amount_minor: 0,
            },
        ];
        let at = chrono::DateTime::from_timestamp(1_764_633_600, 0).unwrap_or_default();
        let svg = super::ageing::break_ageing(&rows, at);
        let (_, text) = parse(&svg);
        assert!(text.contains("6 as of 2025-12-02 00:00 UTC"), "{text}");
        assert!(text.contains("5 breaks, 2 critical"));
        assert!(text.contains("TZS 5001.25"));
        assert!(text.contains("0 breaks, 0 critical"));
        assert!(text.contains(">30d") && text.contains("Open breaks (count)"));
    }

    #[test]
    fn payroll_throughput_is_well_formed_with_its_peaks() {
        let m = |minute, sent, finished| MinuteCount {
            minute,
            sent,
            finished,
        };
        let rows = [
            m(29_000_000, 120, 40),
            m(29_000_001, 80, 150),
            m(29_000_003, 0, 10),
        ];
        let svg = super::throughput::payroll_throughput("June benefits", &rows);
        let (names, text) = parse(&svg);
        assert!(
            text.contains("Sent: 200 lines, peak 120 per minute."),
            "{text}"
        );
        assert!(
            text.contains("Finished: 200 lines, peak 150 per minute."),
            "{text}"
        );
        assert!(
            text.contains("+2 min: 0 lines sent"),
            "a quiet minute is drawn as 0"
        );
        assert!(
            text.contains("Lines per minute")
                && text.contains("Minutes since the first line was sent")
        );
        assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 2);
    }

    #[test]
    fn a_long_payroll_is_drawn_in_wider_buckets() {
        let rows: Vec<MinuteCount> = (0..1000)
            .map(|i| MinuteCount {
                minute: 29_000_000 + i,
                sent: 1,
                finished: 1,
            })
            .collect();
        let svg = super::throughput::payroll_throughput("big", &rows);
        let (_, text) = parse(&svg);
        assert!(text.contains("Lines per 5 minutes"), "{text}");
        assert!(text.contains("Sent: 1000 lines, peak 5 per 5 minutes."));
    }
}
