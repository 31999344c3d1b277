//! A mixture-of-experts block for candle: router linear → softmax → top-K → renormalised gates,
//! E SwiGLU expert MLPs, residual. One set of weights, six dispatch strategies chosen at run time:
//!
//! - `host-topk`: candle-transformers' `mixtral.rs` `SparseMoeBlock`, step for step — the router
//!   probabilities go to the host (`to_vec2`, one device sync per call), top-K is picked there,
//!   each expert runs on its tokens (`index_select`) and is added back with `index_add`. The gate
//!   weights are host constants, so **the router gets no gradient** (as in mixtral.rs).
//! - `gather`: top-K on the device; the per-expert token lists still need one host read (their
//!   sizes are data-dependent); experts run on `index_select`ed tokens, results are `cat`ed and
//!   each token's K results collected with `index_select` — no `scatter_add`/`index_add` in the
//!   forward pass. Backward: candle differentiates `index_select` with `index_add`, so the
//!   backward pass does use `index_add`. Gates come from the device probabilities: the router trains.
//! - `scatter-add`: as `gather`, but the weighted expert rows are combined with `scatter_add`
//!   (the index built by `unsqueeze` + `broadcast_as` + `contiguous`, the field notes' pattern).
//! - `dense`: every expert on every token (batched matmuls) and a device-side top-K mask built
//!   from the selected indices (one-hot), so **zero host syncs** per forward; 2×E/K the expert FLOPs.
//! - `onehot-mm`: as `gather`, but each expert's rows are picked and added back with matmuls by
//!   a one-hot selection matrix (n_e × T) built on the device, so neither direction uses
//!   `index_select`/`index_add`/`scatter_add`, whose CUDA kernels are serial over the rows
//!   (repro `index_add_rows`). Costs 2·T·K·T·D extra FLOPs per pass.
//! - `sorted`: device top-K, then the T·K (token, slot) rows laid out by expert in a capacity
//!   layout (E, C, D), one batched matmul per projection running every expert, and one row
//!   gather by the inverse permutation bringing the rows back, weighted by the gates and summed
//!   over K. The gathers are a custom op ([`GatherRows`]) whose forward is candle's
//!   `index_select` and whose backward is the gather by the *other* permutation, so neither
//!   pass runs `index_add`/`scatter_add` (no atomics, deterministic). Two layouts, both exact
//!   ([`SortedCapacity`], [`MoeBlock::set_sorted_capacity`]): `Tokens`, C = T, row
//!   e·T + t for token t's row at expert e, every index computed on the device, so **zero host
//!   syncs** and static shapes at the `dense` strategy's expert FLOPs; `Busiest`, one host read
//!   of the (T, K) ids and a counting sort on the host, C the busiest expert's count (one sync,
//!   far less padding; the default, faster on the GPU measured). Padding rows cost FLOPs but never reach a gradient:
//!   [`MoeBlock::last_capacity_layout`] reports them. The router trains.
//!
//! Softmax is written with differentiable tensor ops (candle-nn's fused `softmax_last_dim` has
//! no backward) and computed in f32 whatever the weights' dtype.

mod auto;
mod baselines;
mod block;
mod gather_rows;
mod routing;
mod strategies;

pub use auto::AutoChoice;
pub use baselines::DenseFfn;
#[cfg(feature = "cuda")]
pub use baselines::FusedMoeGemm;
pub use block::{Expert, MoeBlock, MoeConfig};
pub use gather_rows::GatherRows;
pub use routing::{host_topk, softmax_f32};
pub use strategies::sorted::{CapacityLayout, SortedCapacity};

use candle_core::{Result, Tensor};
use std::str::FromStr;

/// `strategies! { Variant "name" forward route, … }`: the `Dispatch` enum, `ALL`, `name()` and
/// the dispatch of `MoeBlock::forward` / `MoeBlock::route`, one line per strategy — a new
/// strategy is its two methods on `MoeBlock` and one line here.
macro_rules! strategies {
    ($($(#[doc = $doc:literal])* $variant:ident $name:literal $forward:ident $route:ident,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Dispatch {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Dispatch {
            pub const ALL: [Dispatch; [$(Dispatch::$variant),*].len()] = [$(Dispatch::$variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Dispatch::$variant => $name,)*
                }
            }
        }

        impl MoeBlock {
            /// The strategy's forward (without the residual).
            fn strategy_forward(&self, x: &Tensor, dispatch: Dispatch) -> Result<Tensor> {
                match dispatch {
                    $(Dispatch::$variant => self.$forward(x),)*
                }
            }

            /// The strategy's routing alone (see `route`).
            fn strategy_route(&self, x: &Tensor, dispatch: Dispatch) -> Result<()> {
                match dispatch {
                    $(Dispatch::$variant => self.$route(x),)*
                }
            }
        }
    };
}

strategies! {
    /// mixtral.rs's algorithm: routing read to the host, per-expert index_select/index_add.
    HostTopK "host-topk" host_topk_forward route_on_host,
    /// Device top-K, rows gathered per expert, combined with index_add.
    Gather "gather" gather_forward route_device_topk,
    /// Device top-K, rows gathered per expert, combined with scatter_add.
    ScatterAdd "scatter-add" scatter_add_forward route_device_topk,
    /// Every expert on every token, masked by the gate matrix.
    Dense "dense" dense_forward route_gate_matrix,
    /// Dispatch and combine as one-hot matmuls.
    OneHotMatmul "onehot-mm" onehot_forward route_device_topk,
    /// Sort once, move rows with gathers, one batched GEMM per layer (MegaBlocks / MLX).
    Sorted "sorted" sorted_forward route_sorted,
}

impl Dispatch {
    /// Whether the router's weights receive a gradient under this strategy.
    pub fn trains_router(self) -> bool {
        self != Dispatch::HostTopK
    }
}

impl FromStr for Dispatch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Dispatch::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Dispatch::ALL.iter().map(|d| d.name()).collect();
                format!(
                    "unknown dispatch `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
