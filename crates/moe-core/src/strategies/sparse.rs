//! `gather` and `scatter-add`: device top-K, each expert on its `index_select`ed tokens, combined
//! by an `index_select` per slot (`gather`) or by `scatter_add` (`scatter-add`).

use crate::{Dispatch, MoeBlock};
use candle_core::{Result, Tensor};

impl MoeBlock {
    /// `gather` and `scatter-add`: experts on their tokens only, gates from the device.
    pub(crate) fn gather_forward(&self, x: &Tensor) -> Result<Tensor> {
        self.sparse_forward(x, Dispatch::Gather)
    }

    pub(crate) fn scatter_add_forward(&self, x: &Tensor) -> Result<Tensor> {
        self.sparse_forward(x, Dispatch::ScatterAdd)
    }

    fn sparse_forward(&self, x: &Tensor, dispatch: Dispatch) -> Result<Tensor> {
        let (t, d) = x.dims2()?;
        let (k, e_count) = (self.config.k, self.config.e);
        let (idx, gates) = self.device_topk(&self.probs(x)?)?;
        let chosen = self.read::<u32>(&idx)?;
        // Expert-ordered rows: token of each row, and the (t, k) slot each row answers.
        let mut rows_of: Vec<Vec<(u32, u32)>> = vec![Vec::new(); e_count];
        for (tok, sel) in chosen.iter().enumerate() {
            for (slot, &e) in sel.iter().enumerate() {
                rows_of[e as usize].push((tok as u32, (tok * k + slot) as u32));
            }
        }
        let mut outs = Vec::new();
        let (mut row_token, mut row_slot) = (Vec::with_capacity(t * k), Vec::with_capacity(t * k));
        for (e, rows) in rows_of.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let toks: Vec<u32> = rows.iter().map(|r| r.0).collect();
            outs.push(self.expert(
                &x.index_select(&Tensor::new(toks.as_slice(), x.device())?, 0)?,
                e,
            )?);
            row_token.extend(toks);
            row_slot.extend(rows.iter().map(|r| r.1));
        }
        let y = Tensor::cat(&outs, 0)?; // (T·K, D), expert order
        match dispatch {
            Dispatch::Gather => {
                // position of slot s in expert order
                let mut pos = vec![0u32; t * k];
                for (r, &s) in row_slot.iter().enumerate() {
                    pos[s as usize] = r as u32;
                }
                let per_slot = y
                    .index_select(&Tensor::new(pos.as_slice(), x.device())?, 0)?
                    .reshape((t, k, d))?;
                per_slot.broadcast_mul(&gates.unsqueeze(2)?)?.sum(1)
            }
            _ => {
                let slot_idx = Tensor::new(row_slot.as_slice(), x.device())?;
                let row_gates = gates
                    .flatten_all()?
                    .index_select(&slot_idx, 0)?
                    .unsqueeze(1)?;
                let weighted = y.broadcast_mul(&row_gates)?;
                let tok = Tensor::new(row_token.as_slice(), x.device())?;
                let tok = tok.unsqueeze(1)?.broadcast_as((t * k, d))?.contiguous()?;
                x.zeros_like()?.scatter_add(&tok, &weighted, 0)
            }
        }
    }
}
