//! `auto`: picks the fastest router-training strategy by timing a training step of each where
//! the block runs ([`MoeBlock::auto_dispatch`], [`AutoChoice`]).

use crate::{Dispatch, MoeBlock};
use candle_core::{Result, Tensor};

/// What `MoeBlock::auto_dispatch` measured and picked.
#[derive(Clone, Debug)]
pub struct AutoChoice {
    pub dispatch: Dispatch,
    /// Median ms of one training step per router-training strategy, or why it failed.
    pub timings_ms: Vec<(Dispatch, std::result::Result<f64, String>)>,
}

impl std::fmt::Display for AutoChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .timings_ms
            .iter()
            .map(|(d, t)| match t {
                Ok(ms) => format!("{} {ms:.3} ms", d.name()),
                Err(e) => format!("{} fails ({e})", d.name()),
            })
            .collect();
        write!(
            f,
            "auto picks {} ({})",
            self.dispatch.name(),
            parts.join(", ")
        )
    }
}

impl MoeBlock {
    /// `auto`: times one training step (forward, then backward of the output's sum) of every
    /// strategy that trains the router, on `x` and this block's device, and picks the fastest by
    /// median of `iters` synchronised steps after a warm-up. A strategy whose step fails (today
    /// `scatter-add`, whose backward candle 0.11.1 cannot compute) is listed with its error and
    /// never picked. The crossovers move with D, T, dtype and device, so they are measured where
    /// the block runs rather than read from a table.
    pub fn auto_dispatch(&self, x: &Tensor, iters: usize) -> Result<AutoChoice> {
        let timing = harness::timing::TimingConfig {
            iters: iters.max(1),
            warmup_iters: 1,
            warmup_min: std::time::Duration::ZERO,
        };
        let mut timings = Vec::new();
        for dispatch in Dispatch::ALL.into_iter().filter(|d| d.trains_router()) {
            let step = harness::timing::measure(x.device(), &timing, || {
                self.forward(x, dispatch)?.sum_all()?.backward().map(|_| ())
            });
            timings.push((
                dispatch,
                step.map(|s| s.median_ms).map_err(|e: candle_core::Error| {
                    e.to_string().lines().next().unwrap_or("").to_string()
                }),
            ));
        }
        let best = timings
            .iter()
            .filter_map(|(d, t)| t.as_ref().ok().map(|ms| (*d, *ms)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(d, _)| d)
            .ok_or_else(|| {
                candle_core::Error::Msg("auto: no strategy could run a training step".into())
            })?;
        Ok(AutoChoice {
            dispatch: best,
            timings_ms: timings,
        })
    }
}
