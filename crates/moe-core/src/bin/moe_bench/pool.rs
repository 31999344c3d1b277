//! The CUDA memory pool's effect, timed once per run so it stays visible: candle 0.11.1 leaves
//! the default pool's release threshold at 0, so every synchronisation hands freed memory back
//! to the driver (`repro --bin cuda_pool_release`). moe_bench times one configuration with the
//! pool as opened, then keeps freed memory for the rest of the run (`CUDA_POOL_RELEASE_ON_SYNC=1`
//! opts out).

use crate::measure::{run_pass, Pass};
use crate::Args;
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use harness::cuda_pool;
use harness::timing::{measure, ratio, warm_device, TimingConfig};
use moe_core::{Dispatch, MoeBlock, MoeConfig};
use std::time::Duration;

/// On CUDA: times `sorted` fwd+bwd at the first dtype, the largest T and the first D with the
/// pool as opened and after [`cuda_pool::keep_freed_memory`], and says so in one note. `None`
/// elsewhere (no pool to set).
pub(crate) fn pool_note(
    args: &Args,
    dtypes: &[DType],
    device: &Device,
    timing: &TimingConfig,
) -> Result<Option<String>> {
    let Some(opened) = cuda_pool::state(device)? else {
        return Ok(None);
    };
    let dtype = dtypes.first().copied().unwrap_or(DType::F32);
    let t = args.tokens.iter().copied().max().unwrap_or(1) as usize;
    let d = args.dims.first().copied().unwrap_or(8) as usize;
    let config = MoeConfig {
        d,
        e: args.experts as usize,
        k: args.k as usize,
        f: 4 * d,
        dtype,
    };
    let block = MoeBlock::new(config, device)?;
    let x = Tensor::randn(0f32, 1.0, (t, d), device)?.to_dtype(dtype)?;
    let step = || run_pass(block.forward(&x, Dispatch::Sorted), Pass::ForwardBackward);
    warm_device(device, Duration::from_secs(1), step)?;
    let as_opened = measure(device, timing, step)?;
    let Some(done) = cuda_pool::keep_freed_memory(device)? else {
        return Ok(None);
    };
    let kept = measure(device, timing, step)?;
    Ok(Some(format!(
        "CUDA memory pool: sorted fwd+bwd ({dtype:?}, T = {t}, D = {d}) takes {:.3} ms with the pool as candle opened it (release threshold {}) and {:.3} ms after this run set it ({:.2}×). {done}; every row above was measured after it.",
        as_opened.median_ms,
        if opened.release_threshold == cuda_pool::KEEP_ALL { "u64::MAX".to_string() } else { opened.release_threshold.to_string() },
        kept.median_ms,
        ratio(&as_opened, &kept),
    )))
}
