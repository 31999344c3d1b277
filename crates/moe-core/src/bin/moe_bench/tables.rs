//! The report's tables from the measurements: the main rows and their JSON records, where the
//! time goes at the largest T, and the counted calls.

use crate::measure::{Measured, Pass};
use crate::Args;
use harness::bench::BenchRecord;
use harness::device::{Environment, CANDLE_VERSION};
use moe_core::Dispatch;

/// One table row and one JSON record per measurement, with the speedups against host-topk and
/// the dense-active FFN.
pub(crate) fn rows_and_records(
    all: &[Measured],
    args: &Args,
    env: &Environment,
) -> (Vec<Vec<String>>, Vec<BenchRecord>) {
    let (e, k) = (args.experts as usize, args.k as usize);
    let device_name = format!("{:#}", env.target);
    let find = |m: &Measured, dispatch: Option<Dispatch>| {
        all.iter()
            .find(|o| {
                o.dtype == m.dtype
                    && o.t == m.t
                    && o.d == m.d
                    && o.pass == m.pass
                    && o.dispatch == dispatch
            })
            .and_then(|o| o.result.as_ref().ok())
            .map(|s| s.median_ms)
    };
    let mut rows = Vec::new();
    let mut records = Vec::new();
    for m in all {
        let name = m.dispatch.map_or("dense-active-ffn", |d| d.name());
        let host = find(m, Some(Dispatch::HostTopK));
        let active = find(m, None);
        let (median, speedup, vs_active) = match &m.result {
            Ok(s) => (
                format!("{:.3}", s.median_ms),
                host.map_or("—".into(), |h| format!("{:.2}×", h / s.median_ms)),
                active.map_or("—".into(), |a| format!("{:.2}", s.median_ms / a)),
            ),
            // The message is in the JSON record and the notes; the table stays narrow.
            Err(_) => ("error".into(), "—".into(), "—".into()),
        };
        rows.push(vec![
            m.dtype.as_str().into(),
            m.t.to_string(),
            m.d.to_string(),
            m.pass.name().into(),
            name.into(),
            median,
            speedup,
            vs_active,
        ]);
        records.push(BenchRecord {
            config: [
                ("dtype", m.dtype.as_str().into()),
                ("tokens", m.t.into()),
                ("d", m.d.into()),
                ("experts", e.into()),
                ("k", k.into()),
                ("f", (4 * m.d).into()),
                ("pass", m.pass.name().into()),
                ("strategy", name.into()),
            ]
            .into_iter()
            .map(|(a, b): (&str, serde_json::Value)| (a.to_string(), b))
            .collect(),
            stats: m.result.as_ref().ok().cloned(),
            ratio_to_baseline: match (&m.result, host) {
                (Ok(s), Some(h)) => Some(s.median_ms / h),
                _ => None,
            },
            baseline: Some("host-topk, same dtype/T/D/pass".into()),
            counts: [(
                "error",
                serde_json::Value::from(m.result.as_ref().err().cloned()),
            )]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b))
            .collect(),
            device: device_name.clone(),
            candle_version: CANDLE_VERSION.into(),
        });
    }
    (rows, records)
}

/// Route, experts + combine and backward of each measurement at `t_max`.
pub(crate) fn phase_rows(all: &[Measured], t_max: usize) -> Vec<Vec<String>> {
    // Phases at the largest T: route, experts + combine (forward − route), backward (fwd+bwd − fwd).
    let mut phases = Vec::new();
    for m in all
        .iter()
        .filter(|m| m.t == t_max && m.pass == Pass::Forward)
    {
        let fwd = match &m.result {
            Ok(s) => s.median_ms,
            Err(_) => continue,
        };
        let both = all
            .iter()
            .find(|o| {
                o.dtype == m.dtype
                    && o.t == m.t
                    && o.d == m.d
                    && o.pass == Pass::ForwardBackward
                    && o.dispatch == m.dispatch
            })
            .and_then(|o| o.result.as_ref().ok())
            .map(|s| s.median_ms);
        let route = m.route.as_ref().map(|s| s.median_ms);
        let f = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.3}"));
        phases.push(vec![
            m.dtype.as_str().into(),
            m.d.to_string(),
            m.dispatch.map_or("dense-active-ffn", |d| d.name()).into(),
            f(route),
            f(route.map(|r| fwd - r).or(Some(fwd))),
            f(both.map(|b| b - fwd)),
            both.map_or("—".into(), |b| format!("{:.2}", (b - fwd) / fwd)),
        ]);
    }
    phases
}

/// The calls of one pass, per measurement (with --count-launches).
pub(crate) fn call_rows(all: &[Measured]) -> Vec<Vec<String>> {
    let calls: Vec<Vec<String>> = all
        .iter()
        .filter_map(|m| {
            let c = m.calls?;
            let mut row = vec![
                m.dtype.as_str().to_string(),
                m.t.to_string(),
                m.d.to_string(),
                m.pass.name().to_string(),
                m.dispatch
                    .map_or("dense-active-ffn", |d| d.name())
                    .to_string(),
            ];
            row.extend(c.iter().map(|v| v.to_string()));
            Some(row)
        })
        .collect();
    calls
}
