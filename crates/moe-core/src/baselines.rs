//! The benchmark's anchors on the block's tokens: candle-nn's fused MoE GEMM (CUDA inference) and
//! a dense SwiGLU FFN over the active FLOPs.

#[cfg(feature = "cuda")]
use crate::MoeBlock;
#[cfg(feature = "cuda")]
use candle_core::D;
use candle_core::{DType, Device, Result, Tensor, Var};

/// candle-nn's in-tree fused MoE GEMM (`candle_nn::moe::moe_gemm`, CUDA, f16/bf16, forward
/// only), driven as candle-transformers' `FusedMoe` drives it, on this block's weights: an
/// inference anchor for the benchmark.
#[cfg(feature = "cuda")]
pub struct FusedMoeGemm {
    /// (E, 2F, D): each expert's gate and up projections, transposed and packed.
    gate_up: Tensor,
    /// (E, D, F)
    down: Tensor,
    f: usize,
    k: usize,
}

#[cfg(feature = "cuda")]
impl FusedMoeGemm {
    pub fn new(block: &MoeBlock) -> Result<Self> {
        let gate_up: Vec<Tensor> = block
            .experts
            .iter()
            .map(|x| Tensor::cat(&[x.gate.as_tensor().t()?, x.up.as_tensor().t()?], 0))
            .collect::<Result<_>>()?;
        let down: Vec<Tensor> = block
            .experts
            .iter()
            .map(|x| x.down.as_tensor().t()?.contiguous())
            .collect::<Result<_>>()?;
        Ok(Self {
            gate_up: Tensor::stack(&gate_up, 0)?,
            down: Tensor::stack(&down, 0)?,
            f: block.config.f,
            k: block.config.k,
        })
    }

    /// `x + moe(x)` with the block's router and the fused GEMMs for the experts.
    pub fn forward(&self, block: &MoeBlock, x: &Tensor) -> Result<Tensor> {
        let (t, d) = x.dims2()?;
        let probs = block.probs(x)?;
        let (idx, _) = block.device_topk(&probs)?;
        let top = probs.gather(&idx, 1)?;
        let weights = top
            .broadcast_div(&top.sum_keepdim(1)?)?
            .to_dtype(DType::F32)?
            .contiguous()?;
        let (expert_ids, sorted_token_ids) = idx.flatten_all()?.sort_last_dim(true)?;
        let gate_up = candle_nn::moe::moe_gemm(
            x,
            &self.gate_up,
            &None,
            &sorted_token_ids,
            &expert_ids,
            self.k,
            true,
        )?;
        let gate = gate_up.narrow(D::Minus1, 0, self.f)?.contiguous()?;
        let up = gate_up.narrow(D::Minus1, self.f, self.f)?.contiguous()?;
        let h = (gate.silu()? * up)?.reshape(((), self.f))?;
        let y = candle_nn::moe::moe_gemm(
            &h,
            &self.down,
            &Some(weights),
            &sorted_token_ids,
            &expert_ids,
            self.k,
            true,
        )?;
        x + y.reshape((t, self.k, d))?.sum(1)?
    }
}

/// The cost of the active FLOPs: a dense SwiGLU FFN of hidden `hidden` on the same tokens
/// (MegaBlocks' framing of the limit a sparse MoE can approach).
pub struct DenseFfn {
    pub w_gate: Var,
    pub w_up: Var,
    pub w_down: Var,
}

impl DenseFfn {
    pub fn new(d: usize, hidden: usize, dtype: DType, device: &Device) -> Result<Self> {
        let init = |shape: (usize, usize), fan_in: usize| -> Result<Var> {
            Var::from_tensor(
                &Tensor::randn(0f32, (1.0 / fan_in as f64).sqrt() as f32, shape, device)?
                    .to_dtype(dtype)?,
            )
        };
        Ok(Self {
            w_gate: init((d, hidden), d)?,
            w_up: init((d, hidden), d)?,
            w_down: init((hidden, d), hidden)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = (x.matmul(self.w_gate.as_tensor())?.silu()? * x.matmul(self.w_up.as_tensor())?)?;
        x + h.matmul(self.w_down.as_tensor())?
    }
}
