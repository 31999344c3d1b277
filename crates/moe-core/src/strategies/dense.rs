//! `dense`: every expert on every token (batched matmuls), masked by the device-built gate matrix.

use crate::MoeBlock;
use candle_core::{Result, Tensor};

impl MoeBlock {
    /// Every expert on every token; the top-K mask built on the device. No host sync.
    pub(crate) fn dense_forward(&self, x: &Tensor) -> Result<Tensor> {
        let (idx, gates) = self.device_topk(&self.probs(x)?)?;
        let gate_full = self.gate_matrix(&idx, &gates)?; // (T, E)
        let (w_gate, w_up, w_down) = self.stacked()?;
        let xb = x.unsqueeze(0)?; // (1, T, D)
        let g = xb.broadcast_matmul(&w_gate)?; // (E, T, F)
        let u = xb.broadcast_matmul(&w_up)?;
        let y = (g.silu()? * u)?.matmul(&w_down)?; // (E, T, D)
        y.broadcast_mul(&gate_full.t()?.unsqueeze(2)?)?.sum(0)
    }
}
