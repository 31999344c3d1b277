//! Timing on any device: warm-up, then iterations each bracketed by `Device::synchronize()`, so a
//! GPU's queued work is counted in the iteration that queued it. Medians and spread, never means
//! of a noisy few; ratios only against a baseline measured in the same run.
//!
//! Why a synchronize on both sides holds on each backend (candle 0.11.1): on CUDA it waits for
//! the stream. On Metal (`MetalDevice::synchronize` → `Commands::wait_until_completed`) it
//! commits the pending command buffer and waits for the last one on the device's single queue;
//! ops are committed only every 50 encoder requests or at a sync/read-back, so without the
//! closing synchronize a short iteration would time host encoding only, and without the opening
//! one it would pay for earlier work. It also sweeps the buffer pool on the host (a little host
//! time inside the bracket), and the first use of each Metal kernel source compiles it: hence
//! the warm-up.

use candle_core::Device;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Serialize)]
pub struct TimingConfig {
    /// Timed iterations (at least 20 for reported figures).
    pub iters: usize,
    /// Untimed iterations before timing starts...
    pub warmup_iters: usize,
    /// ...and for at least this long: a GPU idles at low clocks, and a first configuration timed
    /// cold was seen running twice as slow as the same one timed warm.
    #[serde(with = "millis")]
    pub warmup_min: Duration,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            iters: 20,
            warmup_iters: 3,
            warmup_min: Duration::from_millis(300),
        }
    }
}

/// Summary of one configuration's timed iterations, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub iters: usize,
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    pub fn from_samples(mut ms: Vec<f64>) -> Self {
        assert!(!ms.is_empty(), "no samples");
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        Self {
            iters: ms.len(),
            median_ms: median_sorted(&ms),
            p10_ms: q(0.1),
            p90_ms: q(0.9),
            min_ms: ms[0],
            max_ms: ms[ms.len() - 1],
        }
    }

    /// `p10–p90` as a short spread string.
    pub fn spread(&self) -> String {
        format!("{:.3}–{:.3}", self.p10_ms, self.p90_ms)
    }
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `f` through warm-up and `cfg.iters` synchronised, timed iterations.
pub fn measure<E>(
    device: &Device,
    cfg: &TimingConfig,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<Stats, E>
where
    E: From<candle_core::Error>,
{
    let start = Instant::now();
    let mut done = 0;
    while done < cfg.warmup_iters || start.elapsed() < cfg.warmup_min {
        f()?;
        device.synchronize()?;
        done += 1;
    }
    let mut samples = Vec::with_capacity(cfg.iters);
    for _ in 0..cfg.iters {
        device.synchronize()?;
        let t0 = Instant::now();
        f()?;
        device.synchronize()?;
        samples.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Stats::from_samples(samples))
}

/// Runs `f` (synchronised) for at least `at_least`, untimed: a GPU idles at low clocks, so a run
/// warms the device once before its first timed configuration.
pub fn warm_device<E>(
    device: &Device,
    at_least: Duration,
    mut f: impl FnMut() -> Result<(), E>,
) -> Result<(), E>
where
    E: From<candle_core::Error>,
{
    let start = Instant::now();
    while start.elapsed() < at_least {
        f()?;
        device.synchronize()?;
    }
    Ok(())
}

/// `t / baseline` of two medians measured in the same run.
pub fn ratio(t: &Stats, baseline: &Stats) -> f64 {
    t.median_ms / baseline.median_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_order_statistics() {
        let s = Stats::from_samples(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.median_ms, s.min_ms, s.max_ms), (3.0, 1.0, 5.0));
        let s = Stats::from_samples(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.median_ms, 2.5);
    }

    #[test]
    fn measure_runs_warmup_then_iters() -> candle_core::Result<()> {
        let cfg = TimingConfig {
            iters: 7,
            warmup_iters: 2,
            warmup_min: Duration::ZERO,
        };
        let mut calls = 0;
        let s = measure(&Device::Cpu, &cfg, || {
            calls += 1;
            Ok::<(), candle_core::Error>(())
        })?;
        assert_eq!((s.iters, calls), (7, 9));
        Ok(())
    }
}
