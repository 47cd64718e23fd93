//! A small SVG writer for the console's pictures: rectangles, lines, markers and text, with
//! every text escaped (quick-xml's escaping) and every coordinate an integer.
//!
//! Why not a plotting crate: the pictures must read on paper, so each series is told apart by
//! its fill pattern (outline, hatching, solid) or its marker and dash as well as by its
//! label, and every label must stay text (`<text>`), searchable and sharp when printed.
//! `plotters` (the well-kept choice) has no fill patterns and measures text through a font
//! backend (font files at run time, or a crude estimate without one); what the three
//! pictures need is a few dozen lines of markup, written here once.

use quick_xml::escape::escape;
use std::fmt::Write as _;

/// How a bar is filled: told apart in black and white.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// White with a black outline.
    Outline,
    /// Diagonal hatching.
    Hatch,
    /// Solid dark grey.
    Solid,
}

/// A series' marker on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// An SVG document being written.
pub struct Svg {
    out: String,
    /// Prefix of the ids this picture defines (its patterns), unique on a page that shows
    /// several pictures.
    id: String,
}

impl Svg {
    /// A picture of `width` × `height` with its title and description (read by screen
    /// readers, shown as a tooltip).
    pub fn new(id: &str, width: i64, height: i64, title: &str, desc: &str) -> Svg {
        let mut out = String::with_capacity(16 * 1024);
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
             font-family=\"sans-serif\" font-size=\"12\">\
             <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>\
             <defs><pattern id=\"{id}-hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" \
             height=\"6\"><rect width=\"6\" height=\"6\" fill=\"#fff\"/>\
             <path d=\"M0,6 L6,0 M-1,1 L1,-1 M5,7 L7,5\" stroke=\"#000\" stroke-width=\"1\"/>\
             </pattern></defs><rect width=\"{width}\" height=\"{height}\" fill=\"#fff\"/>",
            escape(title),
            escape(desc)
        );
        Svg {
            out,
            id: id.to_owned(),
        }
    }

    fn fill(&self, f: Fill) -> String {
        match f {
            Fill::Outline => "#fff".to_owned(),
            Fill::Hatch => format!("url(#{}-hatch)", self.id),
            Fill::Solid => "#444".to_owned(),
        }
    }

    /// A bar, with its exact figure as a tooltip.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, fill: Fill, tip: &str) {
        let f = self.fill(fill);
        let _ = write!(
            self.out,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{f}\" stroke=\"#000\" \
             stroke-width=\"1\"><title>{}</title></rect>",
            w.max(0),
            h.max(0),
            escape(tip)
        );
    }

    pub fn line(&mut self, (x1, y1): (i64, i64), (x2, y2): (i64, i64), dashed: bool, grey: bool) {
        let dash = if dashed {
            " stroke-dasharray=\"6 3\""
        } else {
            ""
        };
        let colour = if grey { "#bbb" } else { "#000" };
        let _ = write!(
            self.out,
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"{colour}\" \
             stroke-width=\"1\"{dash}/>"
        );
    }

    /// A series as a line through `points`.
    pub fn polyline(&mut self, points: &[(i64, i64)], dashed: bool) {
        let pts = points
            .iter()
            .map(|(x, y)| format!("{x},{y}"))
            .collect::<Vec<_>>()
            .join(" ");
        let dash = if dashed {
            " stroke-dasharray=\"6 3\""
        } else {
            ""
        };
        let _ = write!(
            self.out,
            "<polyline points=\"{pts}\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\"{dash}/>"
        );
    }

    /// A point of a series, with its exact figure as a tooltip.
    pub fn marker(&mut self, x: i64, y: i64, m: Marker, tip: &str) {
        let tip = escape(tip);
        let _ = match m {
            Marker::Circle => write!(
                self.out,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"#000\"><title>{tip}</title></circle>"
            ),
            Marker::Square => write!(
                self.out,
                "<rect x=\"{}\" y=\"{}\" width=\"6\" height=\"6\" fill=\"#fff\" stroke=\"#000\" \
                 stroke-width=\"1.5\"><title>{tip}</title></rect>",
                x.saturating_sub(3),
                y.saturating_sub(3)
            ),
        };
    }

    pub fn text(&mut self, x: i64, y: i64, s: &str, anchor: Anchor) {
        let _ = write!(
            self.out,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"{}\">{}</text>",
            anchor.as_str(),
            escape(s)
        );
    }

    /// A heading: bold text.
    pub fn heading(&mut self, x: i64, y: i64, s: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x}\" y=\"{y}\" font-weight=\"bold\" font-size=\"13\">{}</text>",
            escape(s)
        );
    }

    /// Text turned to read bottom to top (a vertical axis's title).
    pub fn vertical_text(&mut self, x: i64, y: i64, s: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" transform=\"rotate(-90 {x} {y})\">{}</text>",
            escape(s)
        );
    }

    /// A legend entry: a swatch of `fill` and its label.
    pub fn swatch(&mut self, x: i64, y: i64, fill: Fill, label: &str) {
        self.rect(x, y.saturating_sub(10), 14, 12, fill, label);
        self.text(x.saturating_add(20), y, label, Anchor::Start);
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// A step of 1, 2 or 5 times a power of ten that covers `0..=max` in at most `ticks` steps.
pub fn nice_step(max: i64, ticks: i64) -> i64 {
    let ticks = ticks.max(1);
    let raw = max
        .max(1)
        .saturating_add(ticks.saturating_sub(1))
        .checked_div(ticks)
        .unwrap_or(1);
    let mut power: i64 = 1;
    loop {
        for m in [1, 2, 5] {
            let step = power.saturating_mul(m);
            if step >= raw {
                return step;
            }
        }
        if power > i64::MAX / 10 {
            return i64::MAX;
        }
        power = power.saturating_mul(10);
    }
}

/// The axis' top: the first multiple of `step` at or above `max` (at least one step).
pub fn axis_top(max: i64, step: i64) -> i64 {
    let step = step.max(1);
    let n = max
        .max(1)
        .saturating_add(step.saturating_sub(1))
        .checked_div(step)
        .unwrap_or(1);
    n.max(1).saturating_mul(step)
}

/// `v` of `top` as a length of `span` pixels (integer arithmetic, no floats: exact figures
/// become coordinates only here, at the very end).
pub fn scale(v: i64, top: i64, span: i64) -> i64 {
    if top <= 0 {
        return 0;
    }
    let scaled = i128::from(v.clamp(0, top))
        .saturating_mul(i128::from(span))
        .checked_div(i128::from(top))
        .unwrap_or(0);
    i64::try_from(scaled).unwrap_or(span)
}

/// Draws a value axis at `x` from `bottom` up `height` pixels: ticks every `step` up to
/// `top`, each labelled by `label`, grid lines across `width`, and the axis' title.
#[allow(clippy::too_many_arguments)]
pub fn value_axis(
    svg: &mut Svg,
    x: i64,
    bottom: i64,
    height: i64,
    width: i64,
    top: i64,
    step: i64,
    title: &str,
    label: impl Fn(i64) -> String,
) {
    let mut v = 0i64;
    while v <= top {
        let y = bottom.saturating_sub(scale(v, top, height));
        svg.line((x, y), (x.saturating_add(width), y), false, v != 0);
        svg.line((x.saturating_sub(4), y), (x, y), false, false);
        svg.text(
            x.saturating_sub(6),
            y.saturating_add(4),
            &label(v),
            Anchor::End,
        );
        v = match v.checked_add(step.max(1)) {
            Some(n) => n,
            None => break,
        };
    }
    svg.line(
        (x, bottom),
        (x, bottom.saturating_sub(height)),
        false,
        false,
    );
    svg.vertical_text(
        x.saturating_sub(78),
        bottom.saturating_sub(height / 2),
        title,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_and_cover_the_maximum() {
        assert_eq!(nice_step(0, 4), 1);
        assert_eq!(nice_step(7, 4), 2);
        assert_eq!(nice_step(250_000, 4), 100_000);
        assert_eq!(nice_step(1_000_001, 4), 500_000);
        assert_eq!(axis_top(250_000, 100_000), 300_000);
        assert_eq!(axis_top(0, 5), 5);
        assert!(nice_step(i64::MAX, 4) >= i64::MAX / 4);
    }

    #[test]
    fn scaling_is_integer_and_bounded() {
        assert_eq!(scale(50, 100, 200), 100);
        assert_eq!(scale(i64::MAX, i64::MAX, 200), 200);
        assert_eq!(scale(-5, 100, 200), 0);
        assert_eq!(scale(5, 0, 200), 0);
    }

    #[test]
    fn text_is_escaped() {
        let mut s = Svg::new("t", 10, 10, "a < b & c", "\"quoted\"");
        s.text(0, 0, "<script>", Anchor::Start);
        let out = s.finish();
        assert!(out.contains("a &lt; b &amp; c"));
        assert!(out.contains("&lt;script&gt;"));
        assert!(!out.contains("<script>"));
    }
}
