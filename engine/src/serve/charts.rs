//! Charts drawn on the server as inline SVG: nothing fetched, nothing scripted, readable with
//! JavaScript off, and each mark carries its figures in a `<title>` (shown on hover). Three shapes
//! serve the run page: bars over time (rows/s, retries and 429s), a timeline of batches per
//! partition (a Gantt), and the axis labels they share.

use super::html::escape;

const WIDTH: f64 = 720.0;
const LEFT: f64 = 56.0;
const HEIGHT: f64 = 140.0;

/// Sums `(seconds since the start, value)` points into `count` equal buckets over `[0, span]`.
pub fn buckets(points: &[(f64, f64)], span: f64, count: usize) -> Vec<f64> {
    let mut sums = vec![0.0; count.max(1)];
    let width = (span / sums.len() as f64).max(f64::MIN_POSITIVE);
    for &(t, v) in points {
        let i = ((t / width) as usize).min(sums.len() - 1);
        sums[i] += v;
    }
    sums
}

/// One series of bars: its name, its colour and a value per bucket.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<f64>,
}

/// Bars over time, series side by side in each bucket; `span` is the seconds the buckets cover.
pub fn bars(caption: &str, unit: &str, span: f64, series: &[Series<'_>]) -> String {
    let count = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let mut svg = open(caption, HEIGHT + 30.0);
    axis_y(&mut svg, top, unit);
    if count > 0 && top > 0.0 {
        let slot = (WIDTH - LEFT) / count as f64;
        let bar = slot / series.len() as f64;
        let bucket = span / count as f64;
        for (k, s) in series.iter().enumerate() {
            for (i, &v) in s.values.iter().enumerate() {
                if v <= 0.0 {
                    continue;
                }
                let h = v / top * HEIGHT;
                svg.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\">\
                     <title>{}: {} {unit} at {}-{} s</title></rect>",
                    LEFT + i as f64 * slot + k as f64 * bar,
                    10.0 + HEIGHT - h,
                    (bar - 0.5).max(0.5),
                    s.colour,
                    escape(s.name),
                    figure(v),
                    figure(i as f64 * bucket),
                    figure((i + 1) as f64 * bucket),
                ));
            }
        }
    }
    axis_x(&mut svg, span, HEIGHT + 10.0);
    legend(&mut svg, series.iter().map(|s| (s.name, s.colour)));
    svg.push_str("</svg>");
    svg
}

/// One batch on the timeline.
pub struct Span {
    pub partition: i32,
    pub batch: i32,
    pub start: f64,
    pub end: f64,
    pub severity: i32,
}

/// A lane per partition, a bar per batch from its start to its end (red: failed; amber: rows
/// rejected).
pub fn gantt(caption: &str, spans: &[Span], span: f64) -> String {
    let lanes = spans.iter().map(|s| s.partition).max().map_or(0, |p| p + 1);
    let lane = 14.0;
    let height = (lanes as f64 * lane).max(lane);
    let mut svg = open(caption, height + 30.0);
    for p in 0..lanes {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">p{p}</text>",
            LEFT - 4.0,
            10.0 + p as f64 * lane + 10.0
        ));
    }
    let scale = (WIDTH - LEFT) / span.max(f64::MIN_POSITIVE);
    for s in spans {
        let colour = match s.severity {
            0 => "#4a7",
            2 => "#da3",
            _ => "#c33",
        };
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\">\
             <title>partition {} batch {}: {}-{} s</title></rect>",
            LEFT + s.start.max(0.0) * scale,
            10.0 + s.partition as f64 * lane + 1.0,
            ((s.end - s.start) * scale).max(1.0),
            lane - 2.0,
            s.partition,
            s.batch,
            figure(s.start),
            figure(s.end)
        ));
    }
    axis_x(&mut svg, span, height + 10.0);
    svg.push_str("</svg>");
    svg
}

fn open(caption: &str, height: f64) -> String {
    format!(
        "<figure><figcaption>{}</figcaption><svg role=\"img\" aria-label=\"{0}\" width=\"{WIDTH}\" \
         height=\"{:.0}\" viewBox=\"0 0 {WIDTH} {:.0}\" font-family=\"sans-serif\">",
        escape(caption),
        height + 14.0,
        height + 14.0
    )
}

fn axis_y(svg: &mut String, top: f64, unit: &str) {
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"10\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#888\"/>\
         <text x=\"{:.1}\" y=\"18\" font-size=\"10\" text-anchor=\"end\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">0</text>\
         <text x=\"2\" y=\"{:.1}\" font-size=\"10\">{}</text>",
        10.0 + HEIGHT,
        LEFT - 4.0,
        figure(top),
        LEFT - 4.0,
        10.0 + HEIGHT,
        10.0 + HEIGHT / 2.0,
        escape(unit)
    ));
}

fn axis_x(svg: &mut String, span: f64, y: f64) {
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{WIDTH}\" y2=\"{y:.1}\" stroke=\"#888\"/>\
         <text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"10\">0 s</text>\
         <text x=\"{WIDTH}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{} s</text>",
        y + 12.0,
        y + 12.0,
        figure(span)
    ));
}

fn legend<'a>(svg: &mut String, entries: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut x = LEFT + 120.0;
    for (name, colour) in entries {
        svg.push_str(&format!(
            "<rect x=\"{x:.0}\" y=\"0\" width=\"8\" height=\"8\" fill=\"{colour}\"/>\
             <text x=\"{:.0}\" y=\"8\" font-size=\"10\">{}</text>",
            x + 11.0,
            escape(name)
        ));
        x += 20.0 + name.len() as f64 * 6.0;
    }
}

/// A number as a person reads it on a chart: whole when large, two decimals when small.
pub fn figure(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        crate::run::report::thousands(v.round() as u64)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_fall_in_their_buckets_and_the_last_edge_counts() {
        let b = buckets(&[(0.0, 1.0), (4.9, 2.0), (5.0, 3.0), (10.0, 4.0)], 10.0, 2);
        assert_eq!(b, vec![3.0, 7.0]);
    }

    #[test]
    fn every_bar_and_batch_is_drawn_with_its_figures() {
        let svg = bars(
            "rows/s",
            "rows/s",
            10.0,
            &[Series {
                name: "written",
                colour: "#36c",
                values: vec![0.0, 1500.0],
            }],
        );
        assert_eq!(
            svg.matches("<rect x").count(),
            1 + 1,
            "one bar and the legend: {svg}"
        );
        assert!(svg.contains("written: 1,500 rows/s at 5-10 s"), "{svg}");
        let svg = gantt(
            "batches",
            &[
                Span {
                    partition: 0,
                    batch: 0,
                    start: 0.0,
                    end: 1.0,
                    severity: 0,
                },
                Span {
                    partition: 1,
                    batch: 0,
                    start: 0.5,
                    end: 2.0,
                    severity: 3,
                },
            ],
            2.0,
        );
        assert!(
            svg.contains("partition 1 batch 0: 0.50-2 s") && svg.contains("#c33"),
            "{svg}"
        );
    }
}
