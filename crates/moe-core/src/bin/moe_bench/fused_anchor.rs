//! The CUDA-only inference anchor: candle-nn's fused MoE GEMM timed and checked on the block's
//! weights.

use candle_core::{DType, Tensor};
use harness::timing::{measure, TimingConfig};
use moe_core::{Dispatch, MoeBlock};

/// Times candle-nn's fused MoE GEMM forward on the block's weights and checks it against the
/// block's dense forward; a failure (e.g. its sort beyond 8192 entries) is reported as text.
#[cfg(feature = "cuda")]
pub(crate) fn fused_anchor(
    block: &MoeBlock,
    x: &Tensor,
    timing: &TimingConfig,
    dtype: DType,
    t: usize,
    d: usize,
) -> Vec<String> {
    let row = |a: String, b: String, c: String| {
        vec![dtype.as_str().into(), t.to_string(), d.to_string(), a, b, c]
    };
    let fused = match moe_core::FusedMoeGemm::new(block) {
        Ok(f) => f,
        Err(e) => {
            return row(
                format!("error: {}", e.to_string().lines().next().unwrap_or("")),
                "—".into(),
                "—".into(),
            )
        }
    };
    let check = || -> candle_core::Result<f64> {
        let a = fused.forward(block, x)?.to_dtype(DType::F32)?;
        let b = block.forward(x, Dispatch::Dense)?.to_dtype(DType::F32)?;
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? as f64 / scale.max(1e-12))
    };
    let err = match check() {
        Ok(e) => format!("{e:.2e}"),
        Err(e) => {
            return row(
                format!("error: {}", e.to_string().lines().next().unwrap_or("")),
                "—".into(),
                "—".into(),
            )
        }
    };
    let fused_t = measure(x.device(), timing, || fused.forward(block, x).map(|_| ()));
    let host_t = measure(x.device(), timing, || {
        block.forward(x, Dispatch::HostTopK).map(|_| ())
    });
    match (fused_t, host_t) {
        (Ok(f), Ok(h)) => row(
            format!("{:.3}", f.median_ms),
            format!("{:.2}×", h.median_ms / f.median_ms),
            err,
        ),
        (Err(e), _) | (_, Err(e)) => row(
            format!("error: {}", e.to_string().lines().next().unwrap_or("")),
            "—".into(),
            err,
        ),
    }
}
