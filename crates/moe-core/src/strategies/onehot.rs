//! `onehot-mm`: each expert's rows picked and added back by one-hot selection matmuls.

use crate::MoeBlock;
use candle_core::{Result, Tensor};

impl MoeBlock {
    /// Experts on their tokens, rows picked and added back by one-hot matmuls.
    pub(crate) fn onehot_forward(&self, x: &Tensor) -> Result<Tensor> {
        let (t, _) = x.dims2()?;
        let (idx, gates) = self.device_topk(&self.probs(x)?)?;
        let gate_full = self.gate_matrix(&idx, &gates)?; // (T, E)
        let chosen = self.read::<u32>(&idx)?;
        let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); self.config.e];
        for (tok, sel) in chosen.iter().enumerate() {
            for &e in sel {
                tokens[e as usize].push(tok as u32);
            }
        }
        let positions = Tensor::arange(0u32, t as u32, x.device())?.unsqueeze(0)?; // (1, T)
        let mut out = x.zeros_like()?;
        for (e, toks) in tokens.iter().enumerate() {
            if toks.is_empty() {
                continue;
            }
            let tok = Tensor::new(toks.as_slice(), x.device())?.unsqueeze(1)?; // (n_e, 1)
            let select = tok.broadcast_eq(&positions)?.to_dtype(self.config.dtype)?; // (n_e, T)
            let rows = select.matmul(x)?; // (n_e, D)
                                          // contiguous(): CUDA's matmul rejects a narrowed column (repro matmul_narrowed_operand).
            let gate = select.matmul(&gate_full.narrow(1, e, 1)?.contiguous()?)?; // (n_e, 1)
            let y = self.expert(&rows, e)?.broadcast_mul(&gate)?;
            out = (out + select.t()?.matmul(&y)?)?;
        }
        Ok(out)
    }
}
