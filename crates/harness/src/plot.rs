//! SVG line charts for benchmark curves (time vs size, one line per mode).

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Series with the same group share a colour (one colour per strategy); `None`: the
    /// series is its own group.
    pub group: Option<String>,
    /// Line style: 0 solid, 1 dashed, 2 dotted (one style per dtype).
    pub style: usize,
}

/// Colours people can tell apart (Tableau 10), one per group in order of appearance.
const COLOURS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// A time in milliseconds as people write it: "0.05 ms", "2 ms", "150 ms", "1.5 s".
pub fn format_ms(ms: f64) -> String {
    let (v, unit) = if ms >= 1000.0 {
        (ms / 1000.0, "s")
    } else {
        (ms, "ms")
    };
    let digits = if v >= 10.0 {
        0
    } else if v >= 1.0 {
        1
    } else {
        // Two significant digits below 1.
        (1.0 - v.log10().floor()) as usize
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text} {unit}")
}

/// The 1-2-5 values of each decade between `lo` and `hi` (log-axis ticks people read).
fn one_two_five(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// Renders `series` to an SVG string; both axes logarithmic (sizes and times span decades).
/// The x ticks sit at the measured x values, the y ticks at 1-2-5 times with their unit
/// (`y` is in milliseconds), each group has one colour and each style one dash pattern.
pub fn line_chart_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, String> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if all.is_empty() {
        return Err("nothing to plot".into());
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let mut xs: Vec<f64> = all.iter().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (x0, x1) = (x0 / 1.2, x1 * 1.2);
    let (y0, y1) = (y0 / 1.5, y1 * 1.5);
    let mut ys = one_two_five(y0, y1);
    if ys.len() < 2 {
        ys = vec![y0 * 1.2, y1 / 1.2];
    }
    let mut groups: Vec<String> = Vec::new();
    for s in series {
        let g = s.group.clone().unwrap_or_else(|| s.label.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (x0..x1).log_scale().with_key_points(xs),
                (y0..y1).log_scale().with_key_points(ys),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            // Log axes draw a light line per minor tick; they only clutter a small chart.
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.12))
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&|y| format_ms(*y))
            .draw()
            .map_err(|e| e.to_string())?;
        for s in series {
            let g = s.group.clone().unwrap_or_else(|| s.label.clone());
            let at = groups.iter().position(|x| *x == g).unwrap_or(0);
            let (r, gr, b) = COLOURS[at % COLOURS.len()];
            let colour = RGBColor(r, gr, b);
            let line = colour.stroke_width(2);
            let points = s.points.clone();
            match s.style {
                0 => chart
                    .draw_series(LineSeries::new(points, line))
                    .map_err(|e| e.to_string())?,
                1 => chart
                    .draw_series(DashedLineSeries::new(points, 8, 5, line))
                    .map_err(|e| e.to_string())?,
                _ => chart
                    .draw_series(DashedLineSeries::new(points, 2, 4, line))
                    .map_err(|e| e.to_string())?,
            }
            .label(s.label.clone())
            .legend(move |(x, y)| {
                // The legend's sample shows the line's dash pattern.
                let (dash, gap) = match s.style {
                    0 => (20, 0),
                    1 => (8, 5),
                    _ => (2, 4),
                };
                DashedPathElement::new(vec![(x, y), (x + 24, y)], dash, gap, line)
            });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes the chart atomically.
pub fn write_line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    let svg = line_chart_svg(title, x_label, y_label, series)?;
    crate::report::write_atomic(path, &svg).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg_with_every_label() {
        let s = vec![
            Series {
                label: "f32".into(),
                points: vec![(64.0, 1.0), (128.0, 2.0)],
                ..Default::default()
            },
            Series {
                label: "f16".into(),
                points: vec![(64.0, 1.5), (128.0, 1.8)],
                group: Some("f32".into()),
                style: 1,
            },
        ];
        let svg = line_chart_svg("t", "D", "ms", &s).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("f32") && svg.contains("f16"));
        assert!(line_chart_svg("t", "D", "ms", &[]).is_err());
        // Ticks at the data's own x values and times with their unit.
        let label = |t: &str| svg.contains(&format!(">\n{t}\n</text>"));
        assert!(label("64") && label("128"), "{svg}");
        assert!(label("1 ms") && label("2 ms"), "{svg}");
    }

    #[test]
    fn times_read_as_people_write_them() {
        let cases = [
            (0.05, "0.05 ms"),
            (0.2, "0.2 ms"),
            (2.0, "2 ms"),
            (10.0, "10 ms"),
            (150.0, "150 ms"),
            (1500.0, "1.5 s"),
            (0.126, "0.13 ms"),
        ];
        for (v, want) in cases {
            assert_eq!(format_ms(v), want);
        }
        assert_eq!(
            one_two_five(0.3, 30.0),
            vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        );
    }
}
