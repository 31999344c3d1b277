//! `host-topk`: mixtral.rs's algorithm (routing read to the host, per-expert index_select and
//! index_add; the router gets no gradient).

use crate::{host_topk, MoeBlock};
use candle_core::{DType, Result, Tensor};

impl MoeBlock {
    /// mixtral.rs's algorithm.
    pub(crate) fn host_topk_forward(&self, x: &Tensor) -> Result<Tensor> {
        let (k, e_count, dtype) = (self.config.k, self.config.e, self.config.dtype);
        let probs = self.read::<f32>(&self.probs(x)?.to_dtype(DType::F32)?)?;
        let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); e_count];
        let mut weights: Vec<Vec<f32>> = vec![Vec::new(); e_count];
        for (t, row) in probs.iter().enumerate() {
            let top = host_topk(row, k);
            let sum: f32 = top.iter().map(|&i| row[i]).sum();
            for i in top {
                tokens[i].push(t as u32);
                weights[i].push(row[i] / sum);
            }
        }
        let mut ys = x.zeros_like()?;
        for e in 0..e_count {
            if tokens[e].is_empty() {
                continue;
            }
            let n = tokens[e].len();
            let idx = Tensor::new(tokens[e].as_slice(), x.device())?;
            let w = Tensor::new(weights[e].as_slice(), x.device())?
                .to_dtype(dtype)?
                .reshape((n, 1))?;
            let out = self
                .expert(&x.index_select(&idx, 0)?, e)?
                .broadcast_mul(&w)?;
            ys = ys.index_add(&idx, &out, 0)?;
        }
        Ok(ys)
    }
}
