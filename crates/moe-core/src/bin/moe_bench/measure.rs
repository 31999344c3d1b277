//! The measuring phase: every configuration (dtype × T × D), pass and strategy timed in order,
//! with the routing alone, the calls of one pass and the `sorted` capacity layouts.

use crate::counter::{count_calls, find_counter, Snapshot};
#[cfg(feature = "cuda")]
use crate::fused_anchor::fused_anchor;
use crate::Args;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use harness::timing::{measure, warm_device, Stats, TimingConfig};
use moe_core::{DenseFfn, Dispatch, MoeBlock, MoeConfig, SortedCapacity};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Pass {
    Forward,
    ForwardBackward,
}

impl Pass {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pass::Forward => "fwd",
            Pass::ForwardBackward => "fwd+bwd",
        }
    }
}

pub(crate) fn run_pass(out: candle_core::Result<Tensor>, pass: Pass) -> candle_core::Result<()> {
    let out = out?;
    if pass == Pass::ForwardBackward {
        out.sum_all()?.backward()?;
    }
    Ok(())
}

pub(crate) struct Measured {
    /// Routing-only timing (Pass::Forward rows only; None for the FFN baseline).
    pub(crate) route: Option<Stats>,
    pub(crate) dtype: DType,
    pub(crate) t: usize,
    pub(crate) d: usize,
    pub(crate) pass: Pass,
    /// None for the dense-active FFN baseline.
    pub(crate) dispatch: Option<Dispatch>,
    pub(crate) result: std::result::Result<Stats, String>,
    /// Calls of one pass (with --count-launches).
    pub(crate) calls: Option<[u64; 4]>,
}

/// What the measuring phase collected.
pub(crate) struct Collected {
    pub(crate) all: Vec<Measured>,
    /// candle-nn's fused MoE GEMM (CUDA, f16/bf16 inference): one row per configuration.
    pub(crate) anchors: Vec<Vec<String>>,
    /// The `sorted` strategy's capacity layout per configuration: its padding rows are FLOPs.
    pub(crate) layouts: Vec<(DType, usize, usize, moe_core::CapacityLayout)>,
}

/// Measures every configuration in order (dtype, then T, then D), warming the device first.
pub(crate) fn measure_all(
    args: &Args,
    dtypes: &[DType],
    device: &Device,
    timing: &TimingConfig,
) -> Result<Collected> {
    let counter = if args.count_launches {
        find_counter()
    } else {
        None
    };
    let mut out = Collected {
        all: Vec::new(),
        anchors: Vec::new(),
        layouts: Vec::new(),
    };
    let mut warmed = false;
    for &dtype in dtypes {
        for &t in &args.tokens {
            for &d in &args.dims {
                let (t, d) = (t as usize, d as usize);
                let at = (dtype, t, d);
                measure_config(args, device, timing, counter, at, &mut warmed, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// One configuration: the dense-active FFN, then every strategy, for each pass.
fn measure_config(
    args: &Args,
    device: &Device,
    timing: &TimingConfig,
    counter: Option<Snapshot>,
    (dtype, t, d): (DType, usize, usize),
    warmed: &mut bool,
    out: &mut Collected,
) -> Result<()> {
    let (e, k) = (args.experts as usize, args.k as usize);
    let calls_of =
        |f: &dyn Fn() -> candle_core::Result<()>| counter.and_then(|c| count_calls(c, f));
    let config = MoeConfig {
        d,
        e,
        k,
        f: 4 * d,
        dtype,
    };
    let block = MoeBlock::new(config, device)?;
    block.set_sorted_capacity(match args.sorted_capacity.as_str() {
        "busiest" => SortedCapacity::Busiest,
        _ => SortedCapacity::Tokens,
    });
    let ffn = DenseFfn::new(d, k * 4 * d, dtype, device)?;
    let x = Tensor::randn(0f32, 1.0, (t, d), device)?.to_dtype(dtype)?;
    if !*warmed {
        warm_device(device, Duration::from_secs(1), || {
            run_pass(block.forward(&x, Dispatch::Dense), Pass::ForwardBackward)
        })?;
        *warmed = true;
    }
    for pass in [Pass::Forward, Pass::ForwardBackward] {
        let r = measure(device, timing, || run_pass(ffn.forward(&x), pass))
            .map_err(|e: candle_core::Error| e.to_string());
        out.all.push(Measured {
            route: None,
            dtype,
            t,
            d,
            pass,
            dispatch: None,
            result: r,
            calls: calls_of(&|| run_pass(ffn.forward(&x), pass)),
        });
        #[cfg(feature = "cuda")]
        if pass == Pass::Forward && dtype != DType::F32 && matches!(device, Device::Cuda(_)) {
            out.anchors
                .push(fused_anchor(&block, &x, timing, dtype, t, d));
        }
        for dispatch in Dispatch::ALL {
            let r = measure(device, timing, || {
                run_pass(block.forward(&x, dispatch), pass)
            })
            .map_err(|e: candle_core::Error| {
                e.to_string().lines().next().unwrap_or("").to_string()
            });
            if dispatch == Dispatch::Sorted && pass == Pass::Forward {
                if let Some(l) = block.last_capacity_layout() {
                    out.layouts.push((dtype, t, d, l));
                }
            }
            let route = if pass == Pass::Forward {
                measure(device, timing, || block.route(&x, dispatch)).ok()
            } else {
                None
            };
            out.all.push(Measured {
                route,
                dtype,
                t,
                d,
                pass,
                dispatch: Some(dispatch),
                result: r,
                calls: calls_of(&|| run_pass(block.forward(&x, dispatch), pass)),
            });
        }
    }
    Ok(())
}
