//! Routing shared by the strategies: the router softmax, top-K on the host or the device, the
//! (T, E) gate matrix, and `route` (each strategy's routing alone, for timing).

use crate::{Dispatch, MoeBlock};
use candle_core::{DType, Result, Tensor, D};

/// Each row's top-K (descending, ties to the lower index) of host data.
pub fn host_topk(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Softmax over the last dim from differentiable ops, in f32 (f64 stays f64).
pub fn softmax_f32(x: &Tensor) -> Result<Tensor> {
    let x = if x.dtype() == DType::F64 {
        x.clone()
    } else {
        x.to_dtype(DType::F32)?
    };
    let e = x
        .broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?
        .exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

impl MoeBlock {
    /// Router probabilities (T, E) in f32.
    pub fn probs(&self, x: &Tensor) -> Result<Tensor> {
        softmax_f32(&x.matmul(self.router.as_tensor())?)
    }

    /// Device-side top-K: indices (T, K) u32 and renormalised gates (T, K) in the block's dtype.
    pub(crate) fn device_topk(&self, probs: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = self.config.k;
        let idx = probs
            .detach()
            .arg_sort_last_dim(false)?
            .narrow(1, 0, k)?
            .contiguous()?;
        let top = probs.gather(&idx, 1)?;
        let gates = top
            .broadcast_div(&top.sum_keepdim(1)?)?
            .to_dtype(self.config.dtype)?;
        Ok((idx, gates))
    }

    /// Gates (T, E): the renormalised top-K probabilities at the selected experts, zero elsewhere.
    pub(crate) fn gate_matrix(&self, idx: &Tensor, gates: &Tensor) -> Result<Tensor> {
        let e_count = self.config.e;
        let experts =
            Tensor::arange(0u32, e_count as u32, idx.device())?.reshape((1, 1, e_count))?;
        let one_hot = idx
            .unsqueeze(2)?
            .broadcast_eq(&experts)?
            .to_dtype(self.config.dtype)?; // (T, K, E)
        one_hot.broadcast_mul(&gates.unsqueeze(2)?)?.sum(1)
    }

    /// Only the routing part of `forward` under `dispatch` (router matmul, softmax, top-K, and
    /// the host read or the device mask): for timing where the forward's time goes.
    pub fn route(&self, x: &Tensor, dispatch: Dispatch) -> Result<()> {
        self.strategy_route(x, dispatch)
    }

    /// `host-topk`'s routing: the probabilities read to the host.
    pub(crate) fn route_on_host(&self, x: &Tensor) -> Result<()> {
        self.read::<f32>(&self.probs(x)?.to_dtype(DType::F32)?)?;
        Ok(())
    }

    /// Device top-K, the chosen ids read to the host (`gather`, `scatter-add`, `onehot-mm`).
    pub(crate) fn route_device_topk(&self, x: &Tensor) -> Result<()> {
        let (idx, _) = self.device_topk(&self.probs(x)?)?;
        self.read::<u32>(&idx)?;
        Ok(())
    }

    /// Device top-K into the gate matrix, no host read (`dense`).
    pub(crate) fn route_gate_matrix(&self, x: &Tensor) -> Result<()> {
        let (idx, gates) = self.device_topk(&self.probs(x)?)?;
        self.gate_matrix(&idx, &gates)?;
        Ok(())
    }
}
