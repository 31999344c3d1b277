//! The report (`Report`, `TargetCheck`) and its renderings: the text tables and the SVG chart
//! (the JSON is serde's).

use harness::bench::{table, BenchRecord};
use harness::device::Environment;
use harness::plot::{line_chart_svg, Series};
use harness::timing::TimingConfig;
use serde::Serialize;

#[derive(Serialize)]
pub(crate) struct TargetCheck {
    pub(crate) target: String,
    pub(crate) measured: String,
    pub(crate) met: bool,
}

#[derive(Serialize)]
pub(crate) struct Report {
    pub(crate) environment: Environment,
    pub(crate) command: String,
    pub(crate) timing: TimingConfig,
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) records: Vec<BenchRecord>,
    pub(crate) targets: Vec<TargetCheck>,
    /// Where the time goes, at the largest T: routing, experts + combine, backward.
    pub(crate) phase_columns: Vec<String>,
    pub(crate) phases: Vec<Vec<String>>,
    /// candle-nn's `moe::moe_gemm` (CUDA f16/bf16 inference) on the same weights.
    pub(crate) anchor_columns: Vec<String>,
    pub(crate) anchors: Vec<Vec<String>>,
    pub(crate) call_columns: Vec<String>,
    /// Calls per pass (only with --count-launches).
    pub(crate) calls: Vec<Vec<String>>,
    pub(crate) notes: Vec<String>,
}

pub(crate) fn render(r: &Report) -> String {
    let t = &r.environment.target;
    let mut s = format!(
        "moe_bench on {t} · candle {} · {}\ncommand: {}\n\n",
        r.environment.candle_version, r.environment.os, r.command
    );
    s.push_str(&table(&r.columns, &r.rows, false));
    s.push_str("\nwhere the time goes at the largest T (route: router, softmax, top-K and the host read or device mask; backward = fwd+bwd − fwd):\n");
    s.push_str(&table(&r.phase_columns, &r.phases, false));
    if !r.anchors.is_empty() {
        s.push_str("\ncandle-nn's fused moe::moe_gemm (inference, as candle-transformers' FusedMoe drives it) on the same weights:\n");
        s.push_str(&table(&r.anchor_columns, &r.anchors, false));
    }
    if !r.calls.is_empty() {
        s.push_str("\ncalls of one pass, counted by tools/cuda-launch-count (candle's own kernels; each cuBLAS call launches kernels of its own, not counted):\n");
        s.push_str(&table(&r.call_columns, &r.calls, false));
    }
    s.push('\n');
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    for c in &r.targets {
        s.push_str(&format!(
            "target: {} — {} — {}\n",
            c.target,
            c.measured,
            if c.met { "met" } else { "MISSED" }
        ));
    }
    s
}

/// fwd+bwd time vs D at the largest T, one colour per strategy and one line style per dtype.
pub(crate) fn plot(r: &Report) -> Option<String> {
    plot_json(&serde_json::to_value(r).ok()?)
}

/// The same chart from a report's JSON (a committed `moe_bench.json`, for `--replot`).
pub(crate) fn plot_json(r: &serde_json::Value) -> Option<String> {
    let records = r["records"].as_array()?;
    let t_max = records
        .iter()
        .filter_map(|x| x["config"]["tokens"].as_u64())
        .max()?;
    let mut dtypes: Vec<String> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for rec in records.iter().filter(|x| {
        x["config"]["tokens"].as_u64() == Some(t_max) && x["config"]["pass"] == "fwd+bwd"
    }) {
        let Some(median) = rec["stats"]["median_ms"].as_f64() else {
            continue;
        };
        let strategy = rec["config"]["strategy"].as_str()?;
        let dtype = rec["config"]["dtype"].as_str()?.to_string();
        if !dtypes.contains(&dtype) {
            dtypes.push(dtype.clone());
        }
        let label = format!("{strategy} {dtype}");
        let p = (rec["config"]["d"].as_f64()?, median);
        match series.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(p),
            None => series.push(Series {
                label,
                points: vec![p],
                group: Some(strategy.to_string()),
                style: dtypes.iter().position(|d| *d == dtype).unwrap_or(0),
            }),
        }
    }
    let target = &r["environment"]["target"];
    line_chart_svg(
        &format!(
            "moe_bench fwd+bwd, T = {t_max}, on {} ({})",
            target["location"].as_str()?,
            target["name"].as_str()?
        ),
        "model width D",
        "median time per step (log scale)",
        &series,
    )
    .ok()
}
