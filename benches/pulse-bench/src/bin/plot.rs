//! `plot`: draws round-trip latency distributions (files written by
//! `pa-latency`, one nanosecond count a line) into one SVG.
//!
//! ```text
//! plot --out FILE.svg [--title TEXT] LABEL=FILE[,FILE...] [LABEL=FILE...]
//! ```
//!
//! Two panels, one line per label (its files pooled):
//! - left: the cumulative distribution, latency in µs on a log x axis,
//!   fraction of requests at or below it on a linear y axis;
//! - right: the tail, the fraction of requests slower than x (1 − CDF)
//!   on log–log axes, down to 1/N.
//!
//! It also prints one line per label on stdout, for scripts:
//!
//! ```text
//! LABEL n=10000 median_us=20.8 p90_us=25.9 p99_us=56.5 max_us=103.2
//! ```
//!
//! (nearest-rank quantiles of the pooled samples, as `pa-latency` prints
//! them for one run).
//!
//! Text is written as SVG `<text>` elements (plotters' SVG backend with
//! no font feature), so the viewer's sans-serif font renders it and
//! building needs no fontconfig or freetype.

use std::process::ExitCode;

use plotters::prelude::*;
use pulse_bench::quantile;

#[derive(Debug)]
struct Series {
    label: String,
    /// Latencies in µs, sorted ascending.
    us: Vec<f64>,
}

#[derive(Debug)]
struct Args {
    out: String,
    title: String,
    series: Vec<Series>,
}

fn usage() -> &'static str {
    "usage: plot --out FILE.svg [--title TEXT] LABEL=FILE[,FILE...] [LABEL=FILE...]"
}

fn load(label: &str, files: &str) -> Result<Series, String> {
    let mut us = Vec::new();
    for path in files.split(',').filter(|p| !p.is_empty()) {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let ns: u64 = line
                .parse()
                .map_err(|e| format!("{path}:{}: {line:?}: {e}", i + 1))?;
            us.push(ns as f64 / 1000.0);
        }
    }
    if us.is_empty() {
        return Err(format!("{label}: no samples in {files}"));
    }
    us.sort_by(f64::total_cmp);
    Ok(Series {
        label: label.to_owned(),
        us,
    })
}

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut title = "GET_SERVER_INFO round trip through libpulse".to_owned();
    let mut series = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = Some(it.next().ok_or("--out needs a value")?),
            "--title" => title = it.next().ok_or("--title needs a value")?,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            _ => {
                let (label, files) = a
                    .split_once('=')
                    .ok_or_else(|| format!("{a:?}: expected LABEL=FILE\n{}", usage()))?;
                series.push(load(label, files)?);
            }
        }
    }
    let out = out.ok_or_else(|| format!("--out is required\n{}", usage()))?;
    if series.is_empty() {
        return Err(format!("no LABEL=FILE given\n{}", usage()));
    }
    Ok(Args { out, title, series })
}

/// (latency, fraction at or below it) at up to ~`n` ranks spread evenly
/// in probability, plus every sample of the slowest 1 %, so the lines stay
/// exact where they are steep and in the tail while the SVG stays small.
fn cdf_points(us: &[f64], n: usize) -> Vec<(f64, f64)> {
    let len = us.len();
    let step = (len / n.max(1)).max(1);
    let tail_from = len - (len / 100).max(1);
    let mut pts = Vec::new();
    for (i, &v) in us.iter().enumerate() {
        if i % step == 0 || i >= tail_from || i + 1 == len {
            pts.push((v, (i + 1) as f64 / len as f64));
        }
    }
    pts
}

/// (latency, fraction of samples strictly slower); the last sample, with
/// nothing slower, is drawn at 1/N so it stays on the log axis.
fn tail_points(us: &[f64], n: usize) -> Vec<(f64, f64)> {
    let len = us.len() as f64;
    cdf_points(us, n)
        .into_iter()
        .map(|(v, f)| (v, (1.0 - f).max(1.0 / len)))
        .collect()
}

fn summary(s: &Series) -> String {
    format!(
        "{} n={} median_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.1}",
        s.label,
        s.us.len(),
        quantile(&s.us, 0.5),
        quantile(&s.us, 0.9),
        quantile(&s.us, 0.99),
        s.us[s.us.len() - 1]
    )
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(0xd6, 0x27, 0x28), // red
    RGBColor(0x1f, 0x77, 0xb4), // blue
    RGBColor(0x2c, 0xa0, 0x2c), // green
    RGBColor(0x94, 0x67, 0xbd), // purple
    RGBColor(0xff, 0x7f, 0x0e), // orange
    RGBColor(0x17, 0xbe, 0xcf), // cyan
];

fn draw(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let lo = args
        .series
        .iter()
        .map(|s| s.us[0])
        .fold(f64::INFINITY, f64::min)
        .max(0.1);
    let hi = args
        .series
        .iter()
        .map(|s| s.us[s.us.len() - 1])
        .fold(0.0, f64::max)
        .max(lo * 2.0);
    let (x0, x1) = (lo / 1.25, hi * 1.25);
    let max_n = args.series.iter().map(|s| s.us.len()).max().unwrap_or(1) as f64;

    let root = SVGBackend::new(&args.out, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&args.title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(600);

    let mut cdf = ChartBuilder::on(&left)
        .caption("CDF (log x)", ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..1.0)?;
    cdf.configure_mesh()
        .x_desc("round trip (µs)")
        .y_desc("fraction of requests ≤ x")
        .x_labels(12)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()?;

    let mut tail = ChartBuilder::on(&right)
        .caption("tail: 1 − CDF (log–log)", ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d((x0..x1).log_scale(), (0.5 / max_n..1.0).log_scale())?;
    tail.configure_mesh()
        .x_desc("round trip (µs)")
        .y_desc("fraction of requests > x")
        .x_labels(12)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;

    for (i, s) in args.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = ShapeStyle::from(&colour).stroke_width(2);
        let median = quantile(&s.us, 0.5);
        let label = format!("{} (n={}, median {:.1} µs)", s.label, s.us.len(), median);
        cdf.draw_series(LineSeries::new(cdf_points(&s.us, 600), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        tail.draw_series(LineSeries::new(tail_points(&s.us, 600), style))?;
    }
    cdf.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("plot: {e}");
            return ExitCode::from(2);
        }
    };
    match draw(&args) {
        Ok(()) => {
            for s in &args.series {
                println!("{}", summary(s));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plot: {}: {e}", args.out);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cdf_points, tail_points};

    #[test]
    fn cdf_keeps_ends_and_tail() {
        let us: Vec<f64> = (1..=1000).map(f64::from).collect();
        let pts = cdf_points(&us, 100);
        assert_eq!(pts.first(), Some(&(1.0, 0.001)));
        assert_eq!(pts.last(), Some(&(1000.0, 1.0)));
        // Every one of the slowest 10 samples is kept.
        assert!(pts.iter().filter(|p| p.0 > 990.0).count() == 10);
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
    }

    #[test]
    fn tail_stays_positive() {
        let us = vec![5.0, 6.0, 7.0];
        let pts = tail_points(&us, 10);
        assert!(pts.iter().all(|p| p.1 > 0.0));
        assert_eq!(pts.last().unwrap().1, 1.0 / 3.0);
    }
}
