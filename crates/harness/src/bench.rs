//! Reports for the performance repros: every record carries its configuration and environment,
//! the verdict is computed by the bench from its own measurements, and the same table renders as
//! text, JSON and upstream issue Markdown.

use crate::device::Environment;
use crate::timing::{Stats, TimingConfig};
use crate::verdict::Verdict;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One measured configuration.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRecord {
    /// Mode, sizes, dtype: whatever identifies the configuration.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Timing of the configuration; None for records that are search results, not timings.
    pub stats: Option<Stats>,
    /// `median / baseline median`, the baseline measured in the same run.
    pub ratio_to_baseline: Option<f64>,
    pub baseline: Option<String>,
    /// Counted facts about the configuration (cast dispatches, host syncs per iteration...).
    pub counts: serde_json::Map<String, serde_json::Value>,
    /// Device, candle version, OS: repeated in every record so a record stands alone.
    pub device: String,
    pub candle_version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub bench: String,
    pub title: String,
    pub claim: String,
    pub source: String,
    pub upstream: Vec<String>,
    pub environment: Environment,
    pub command: String,
    pub timing: TimingConfig,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub records: Vec<BenchRecord>,
    /// Observations computed from the data, one sentence each.
    pub findings: Vec<String>,
    pub verdict: Verdict,
    pub explanation: String,
}

impl BenchReport {
    pub fn device_label(&self) -> String {
        self.environment.target.to_string()
    }
}

/// A right-aligned text table, or a Markdown one.
pub fn table(columns: &[String], rows: &[Vec<String>], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        let _ = writeln!(out, "| {} |", columns.join(" | "));
        let _ = writeln!(
            out,
            "|{}|",
            columns.iter().map(|_| "---").collect::<Vec<_>>().join("|")
        );
        for r in rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        return out;
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(out, "{}", line(columns));
    for r in rows {
        let _ = writeln!(out, "{}", line(r));
    }
    out
}

pub fn text(r: &BenchReport) -> String {
    let e = &r.environment;
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", r.bench, r.title);
    let _ = writeln!(out, "claim:   {}", r.claim);
    let _ = writeln!(out, "source:  {}", r.source);
    for link in &r.upstream {
        let _ = writeln!(out, "upstream: {link}");
    }
    let _ = writeln!(out, "candle:  {} · {} ({})", e.candle_version, e.os, e.arch);
    let _ = writeln!(out, "device:  {}", r.device_label());
    let timed = r.records.iter().any(|rec| rec.stats.is_some());
    if timed {
        let _ = writeln!(
        out,
        "timing:  median of {} iterations, each bracketed by Device::synchronize(), after ≥{} warm-up iterations and ≥{} ms",
        r.timing.iters,
        r.timing.warmup_iters,
        r.timing.warmup_min.as_millis()
    );
    }
    let _ = writeln!(out, "command: {}\n", r.command);
    out.push_str(&table(&r.columns, &r.rows, false));
    let _ = writeln!(out);
    for f in &r.findings {
        let _ = writeln!(out, "finding: {f}");
    }
    let _ = writeln!(out, "VERDICT: {} — {}", r.verdict, r.explanation);
    out
}

pub fn json(r: &BenchReport) -> String {
    serde_json::to_string_pretty(r).expect("a bench report serialises") + "\n"
}

pub fn issue_markdown(r: &BenchReport, snippet: &str) -> String {
    let e = &r.environment;
    let backend = &e.target.backend;
    let mut md = String::new();
    let title = match r.verdict {
        Verdict::Reproduced => format!("[{backend}] {}", r.title),
        Verdict::NotReproduced => format!("(not reproduced on {backend}) {}", r.title),
        _ => format!("({} on {backend}) {}", r.verdict, r.title),
    };
    let _ = writeln!(md, "<!-- title: {title} -->\n## {title}\n");
    let _ = writeln!(md, "**Verdict: `{}`** — {}\n", r.verdict, r.explanation);
    let _ = writeln!(md, "### Environment\n");
    let _ = writeln!(md, "- candle-core `{}`", e.candle_version);
    let _ = writeln!(md, "- device: {}", r.device_label());
    let _ = writeln!(md, "- OS: {} ({})", e.os, e.arch);
    if r.records.iter().any(|rec| rec.stats.is_some()) {
        let _ = writeln!(
            md,
            "- timing: median of {} iterations, each bracketed by `Device::synchronize()`, after warm-up",
            r.timing.iters
        );
    }
    crate::report::md_claim(&mut md, &r.command, &r.claim, &r.source, &r.upstream, None);
    let _ = writeln!(md, "### Measurements\n");
    md.push_str(&table(&r.columns, &r.rows, true));
    let _ = writeln!(md);
    for f in &r.findings {
        let _ = writeln!(md, "- {f}");
    }
    if !snippet.is_empty() {
        let _ = writeln!(md, "\n### Minimal reproduction\n");
        crate::report::md_cargo_toml(&mut md, &e.candle_version, backend);
        let _ = writeln!(
            md,
            "`src/main.rs` (run with `cargo run --release -- {backend}`):\n\n```rust\n{snippet}```"
        );
    }
    md
}

/// The SVG plot of a bench: median ms of its timed records against the numeric config `x_key`,
/// one line per `line(record)`, saved as `<bench>.svg`.
pub fn plot_by(
    r: &BenchReport,
    x_key: &str,
    x_label: &str,
    y_label: &str,
    line: impl Fn(&BenchRecord) -> String,
) -> Option<(String, String)> {
    let mut series: Vec<crate::plot::Series> = Vec::new();
    for rec in &r.records {
        let (Some(stats), Some(x)) = (&rec.stats, rec.config.get(x_key).and_then(|v| v.as_f64()))
        else {
            continue;
        };
        let label = line(rec);
        match series.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push((x, stats.median_ms)),
            None => series.push(crate::plot::Series {
                label,
                points: vec![(x, stats.median_ms)],
                ..Default::default()
            }),
        }
    }
    let title = format!(
        "{} on {} (candle {})",
        r.bench,
        r.device_label(),
        r.environment.candle_version
    );
    crate::plot::line_chart_svg(&title, x_label, y_label, &series)
        .ok()
        .map(|svg| (format!("{}.svg", r.bench), svg))
}

/// Writes `<dir>/<backend>/<bench>.{txt,json,md}` (and returns the paths), each atomically.
pub fn write_reports(dir: &Path, r: &BenchReport, snippet: &str) -> std::io::Result<Vec<PathBuf>> {
    crate::report::write_report_set(
        dir,
        &r.environment.target.backend,
        &r.bench,
        text(r),
        json(r),
        issue_markdown(r, snippet),
    )
}
