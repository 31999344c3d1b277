//! `sorted`: the T·K rows laid out by expert in a capacity layout (E, C, D), one batched matmul
//! per projection, rows moved with [`GatherRows`]; its two layouts ([`SortedCapacity`]) and their
//! routing.

use crate::{GatherRows, MoeBlock};
use candle_core::{DType, Device, Result, Tensor};

/// How the `sorted` strategy sizes its capacity layout (E, C, D). Both are exact (no token is
/// ever dropped); they trade host syncs for padding FLOPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortedCapacity {
    /// C = T: row (e, t) of the layout is token t's row for expert e, used or not. Every index is
    /// computed on the device from the (T, K) top-K ids (no sort needed: a token picks an expert
    /// at most once), so a forward makes **no host read and no upload**, and every shape is
    /// static. The price: E·T rows, the `dense` strategy's expert FLOPs (padding 1 − K/E).
    Tokens,
    /// C = the busiest expert's row count: one host read of the (T, K) ids per forward, a
    /// counting sort on the host and one upload of the index tensors. Padding E·C − T·K rows,
    /// usually far fewer. The default: on an NVIDIA H200 (candle 0.11.1, T = 4096, E = 8, K = 2)
    /// its fwd+bwd was 1.9–3.1× faster than `Tokens` at D = 128 and 1024, f32 and bf16
    /// (`reports/cuda/moe_bench_sorted_tokens.txt` against `moe_bench.txt`): the padded expert
    /// FLOPs cost more than the sync saves.
    #[default]
    Busiest,
}

/// Index constants of the `Tokens` layout for one (T, device): none depends on the data.
pub(crate) struct SortedConsts {
    tokens: usize,
    device: Device,
    /// (T, 1) u32: t.
    token_col: Tensor,
    /// (1, T) u32: t·K, the first slot of each token.
    first_slot: Tensor,
    /// (E, 1, 1) u32: e.
    experts: Tensor,
    /// (E, T) u32: u32::MAX (a zero row for index_select).
    none: Tensor,
}

/// How the `sorted` strategy laid out one batch: E blocks of `capacity` rows for `routed` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityLayout {
    pub experts: usize,
    /// Rows per expert block: T (`SortedCapacity::Tokens`) or the busiest expert's count
    /// (`SortedCapacity::Busiest`).
    pub capacity: usize,
    /// T·K: the rows that carry a token.
    pub routed: usize,
}

impl CapacityLayout {
    /// Rows the batched matmuls run: E·C.
    pub fn rows(&self) -> usize {
        self.experts * self.capacity
    }

    /// Fraction of the expert FLOPs spent on padding: (E·C − T·K) / (E·C).
    pub fn padding_fraction(&self) -> f64 {
        (self.rows() - self.routed) as f64 / self.rows() as f64
    }
}

/// The `sorted` strategy's routing of one batch: the T·K (token, slot) rows counting-sorted by
/// expert into E blocks of `layout.capacity` rows.
struct SortedRouting {
    /// (T, K) renormalised gates in the block's dtype; differentiable w.r.t. the router.
    gates: Tensor,
    /// (E·C,) u32: the token each capacity row holds; u32::MAX (a zero row) for padding. `None`
    /// for the `Tokens` layout, whose row e·T + t always holds token t.
    row_token: Option<Tensor>,
    /// (E·C,) u32: the slot t·K + k each capacity row answers; u32::MAX for padding.
    row_slot: Tensor,
    /// (T·K,) u32: the capacity row of each slot (the inverse of `row_slot`).
    slot_row: Tensor,
    layout: CapacityLayout,
}

impl MoeBlock {
    /// `sorted`'s own routing: top-K of the logits, no full softmax.
    pub(crate) fn route_sorted(&self, x: &Tensor) -> Result<()> {
        self.sorted_routing(x).map(|_| ())
    }

    /// `sorted`'s top-K: the (T, K) expert ids (u32, best first) and the gates (T, K) in the
    /// block's dtype, differentiable w.r.t. the router.
    ///
    /// The gates are the softmax of the K selected logits, which equals the full softmax
    /// renormalised over the top K (the full denominator cancels) at a fraction of the ops, in
    /// both passes; top-K of the logits is top-K of the probabilities. The selected logits come
    /// sorted descending, so their first column is the row maximum the softmax subtracts (no
    /// reduction for it).
    fn sorted_topk(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = self.config.k;
        let logits = x.matmul(self.router.as_tensor())?;
        let logits = if logits.dtype() == DType::F64 {
            logits
        } else {
            logits.to_dtype(DType::F32)?
        };
        let idx = logits
            .detach()
            .arg_sort_last_dim(false)?
            .narrow(1, 0, k)?
            .contiguous()?;
        let top = logits.gather(&idx, 1)?;
        let e = top.broadcast_sub(&top.narrow(1, 0, 1)?.detach())?.exp()?;
        let gates = e
            .broadcast_div(&e.sum_keepdim(1)?)?
            .to_dtype(self.config.dtype)?;
        Ok((idx, gates))
    }

    /// The `Tokens` layout's index constants for `t` tokens on `device`, built once.
    fn sorted_consts(&self, t: usize, device: &Device) -> Result<std::cell::Ref<'_, SortedConsts>> {
        let fresh = matches!(&*self.sorted_consts.borrow(),
            Some(c) if c.tokens == t && c.device.same_device(device));
        if !fresh {
            let (k, e) = (self.config.k, self.config.e);
            let tokens: Vec<u32> = (0..t as u32).collect();
            let first: Vec<u32> = (0..t).map(|i| (i * k) as u32).collect();
            let experts: Vec<u32> = (0..e as u32).collect();
            *self.sorted_consts.borrow_mut() = Some(SortedConsts {
                tokens: t,
                device: device.clone(),
                token_col: Tensor::from_vec(tokens, (t, 1), device)?,
                first_slot: Tensor::from_vec(first, (1, t), device)?,
                experts: Tensor::from_vec(experts, (e, 1, 1), device)?,
                none: Tensor::full(u32::MAX, (e, t), device)?,
            });
        }
        Ok(std::cell::Ref::map(self.sorted_consts.borrow(), |c| {
            c.as_ref().expect("set above")
        }))
    }

    /// The routing of `sorted`, with the layout chosen by [`MoeBlock::sorted_capacity`].
    fn sorted_routing(&self, x: &Tensor) -> Result<SortedRouting> {
        let routing = match self.sorted_capacity.get() {
            SortedCapacity::Tokens => self.sorted_routing_tokens(x)?,
            SortedCapacity::Busiest => self.sorted_routing_busiest(x)?,
        };
        self.last_layout.set(Some(routing.layout));
        Ok(routing)
    }

    /// `Tokens` layout (C = T), all on the device: no host read, no upload, static shapes.
    ///
    /// A token picks an expert at most once, so row e·T + t can hold token t's row for expert
    /// e and no sort is needed. Slot (t, k) → row `ids[t, k]·T + t` (an affine and an add);
    /// row (e, t) → the slot t·K + k with `ids[t, k] = e`, or u32::MAX where t did not pick e
    /// (a compare to (E, T, K), a max and an argmax over K, an add and a select). Every row
    /// holds its token (`row_token` is `None`: the experts run on x broadcast to (E, T, D), as
    /// `dense` runs them); the unpicked rows' outputs are never read, and their gradient is
    /// exactly zero (the combine's backward reads u32::MAX there), so they add nothing to any
    /// gradient.
    fn sorted_routing_tokens(&self, x: &Tensor) -> Result<SortedRouting> {
        let (t, _) = x.dims2()?;
        let (k, e_count) = (self.config.k, self.config.e);
        let (idx, gates) = self.sorted_topk(x)?;
        let c = self.sorted_consts(t, x.device())?;
        let slot_row = idx
            .affine(t as f64, 0.)?
            .broadcast_add(&c.token_col)?
            .flatten_all()?; // (T·K,)
        let picked = c.experts.broadcast_eq(&idx.unsqueeze(0)?)?; // (E, T, K) u8
        let slot = picked.argmax(2)?.broadcast_add(&c.first_slot)?; // (E, T)
        let row_slot = picked.max(2)?.where_cond(&slot, &c.none)?.flatten_all()?; // (E·T,)
        Ok(SortedRouting {
            gates,
            row_token: None,
            row_slot,
            slot_row,
            layout: CapacityLayout {
                experts: e_count,
                capacity: t,
                routed: t * k,
            },
        })
    }

    /// `Busiest` layout: one host read of the expert ids and a counting sort by expert (stable:
    /// rows keep slot order within an expert) into a capacity layout, C the busiest expert's
    /// count; the three index tensors go to the device in one upload.
    ///
    /// The host read is what sizes C (candle's shapes live on the host); reading the (T, K) ids
    /// instead of only the E counts costs the same sync and lets the sort run on the host
    /// instead of as a dozen small device kernels.
    fn sorted_routing_busiest(&self, x: &Tensor) -> Result<SortedRouting> {
        let (k, e_count) = (self.config.k, self.config.e);
        let (idx, gates) = self.sorted_topk(x)?;
        let chosen = self.read::<u32>(&idx)?;
        let t = chosen.len();
        let mut counts = vec![0usize; e_count];
        for &e in chosen.iter().flatten() {
            counts[e as usize] += 1;
        }
        let capacity = counts.iter().copied().max().unwrap_or(0).max(1);
        let rows = e_count * capacity;
        // One buffer, three views: row_token (E·C) | row_slot (E·C) | slot_row (T·K).
        let mut index = vec![u32::MAX; 2 * rows + t * k];
        let mut filled = vec![0usize; e_count];
        for (tok, sel) in chosen.iter().enumerate() {
            for (slot, &e) in sel.iter().enumerate() {
                let e = e as usize;
                let row = e * capacity + filled[e];
                filled[e] += 1;
                let slot = tok * k + slot;
                index[row] = tok as u32;
                index[rows + row] = slot as u32;
                index[2 * rows + slot] = row as u32;
            }
        }
        let index = Tensor::from_vec(index, 2 * rows + t * k, x.device())?;
        Ok(SortedRouting {
            gates,
            row_token: Some(index.narrow(0, 0, rows)?),
            row_slot: index.narrow(0, rows, rows)?,
            slot_row: index.narrow(0, 2 * rows, t * k)?,
            layout: CapacityLayout {
                experts: e_count,
                capacity,
                routed: t * k,
            },
        })
    }

    /// Experts on their rows in an (E, C, D) capacity layout: one batched matmul per
    /// projection, one gather back; no index_add in either pass. With `Busiest`, one gather in.
    pub(crate) fn sorted_forward(&self, x: &Tensor) -> Result<Tensor> {
        let (t, d) = x.dims2()?;
        let k = self.config.k;
        let routing = self.sorted_routing(x)?;
        let CapacityLayout {
            experts, capacity, ..
        } = routing.layout;
        let (w_gate, w_up, w_down) = self.stacked()?;
        let (g, u) = match &routing.row_token {
            // Dispatch: the token of every capacity row (padding reads zeros). Its gradient:
            // each (token, slot)'s row, summed over the K slots of a token. Zero padding rows
            // stay zero through SwiGLU (silu(0)·0 = 0).
            Some(row_token) => {
                let rows = GatherRows::apply_shaped(
                    x,
                    row_token,
                    &routing.slot_row,
                    k,
                    (experts, capacity, d),
                )?;
                (rows.matmul(&w_gate)?, rows.matmul(&w_up)?)
            }
            // Row (e, t) holds token t: x itself, broadcast over the experts (no gather). One
            // copy: `broadcast_matmul` would make its broadcast contiguous once per projection.
            None => {
                let xb = x
                    .unsqueeze(0)?
                    .broadcast_as((experts, capacity, d))?
                    .contiguous()?;
                (xb.matmul(&w_gate)?, xb.matmul(&w_up)?)
            }
        };
        let y = (g.silu()? * u)?.matmul(&w_down)?; // (E, C, D)
                                                   // Combine: back to (token, slot) order by the inverse permutation; its gradient is the
                                                   // gather by the permutation itself (u32::MAX, a zero row, where a row holds no slot:
                                                   // padding rows get exactly zero gradient and add nothing to any weight).
        let per_slot =
            GatherRows::apply_shaped(&y, &routing.slot_row, &routing.row_slot, 1, (t, k, d))?;
        // The gates' gradient is the per-row dot product of the expert outputs with the output
        // gradient: broadcast_mul's backward, summed over D.
        per_slot.broadcast_mul(&routing.gates.unsqueeze(2)?)?.sum(1)
    }
}
