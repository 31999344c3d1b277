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

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp2, DType, Device, Layout, MetalStorage, Result, Shape, Tensor,
    Var, D,
};
use std::cell::{Cell, RefCell};
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

/// What `MoeBlock::auto_dispatch` measured and picked.
#[derive(Clone, Debug)]
pub struct AutoChoice {
    pub dispatch: Dispatch,
    /// Median ms of one training step per router-training strategy, or why it failed.
    pub timings_ms: Vec<(Dispatch, std::result::Result<f64, String>)>,
}

impl std::fmt::Display for AutoChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .timings_ms
            .iter()
            .map(|(d, t)| match t {
                Ok(ms) => format!("{} {ms:.3} ms", d.name()),
                Err(e) => format!("{} fails ({e})", d.name()),
            })
            .collect();
        write!(
            f,
            "auto picks {} ({})",
            self.dispatch.name(),
            parts.join(", ")
        )
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

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeConfig {
    /// Model width.
    pub d: usize,
    /// Experts.
    pub e: usize,
    /// Experts per token.
    pub k: usize,
    /// Expert hidden width.
    pub f: usize,
    pub dtype: DType,
}

impl MoeConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.d == 0 || self.f == 0 || self.e < 2 || self.k == 0 || self.k > self.e {
            return Err(format!(
                "invalid MoE config: need d, f ≥ 1, e ≥ 2 and 1 ≤ k ≤ e (got {self:?})"
            ));
        }
        Ok(())
    }
}

/// One expert's SwiGLU weights.
pub struct Expert {
    /// (D, F)
    pub gate: Var,
    /// (D, F)
    pub up: Var,
    /// (F, D)
    pub down: Var,
}

/// The block's parameters, shared by every strategy.
///
/// Each expert has its own variables rather than a slice of stacked (E, D, F) ones: candle
/// differentiates a slice (`narrow`) by padding its gradient with zeros to the full stacked
/// size, so E slices cost E full-size gradient tensors per step (measured: the sparse
/// strategies' backward was 4× the dense-active FFN's). The dense strategy stacks the experts
/// on the fly instead; the backward of a stack is a cheap slice per expert.
pub struct MoeBlock {
    pub config: MoeConfig,
    /// (D, E)
    pub router: Var,
    pub experts: Vec<Expert>,
    /// Host reads issued by forward passes (each one a device sync).
    syncs: Cell<usize>,
    /// The capacity layout of the last `sorted` routing.
    last_layout: Cell<Option<CapacityLayout>>,
    /// How `sorted` sizes its capacity layout.
    sorted_capacity: Cell<SortedCapacity>,
    /// `sorted`'s index constants for the last (T, device), so that a forward uploads nothing.
    sorted_consts: RefCell<Option<SortedConsts>>,
}

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
struct SortedConsts {
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

/// Row gather `src[index]` (dim 0) whose gradient is again a row gather: of the output's
/// gradient by `grad_index`, summed over consecutive groups of `grad_fold` rows. With `index` a
/// permutation and `grad_index` its inverse (fold 1), or `index` the token of each sorted row and
/// `grad_index` each (token, slot)'s sorted row (fold K), neither pass needs `index_add` — the
/// gradient candle gives `index_select`, whose CUDA kernel is serial over the indexed rows
/// (repro `index_add_rows`). Every forward is candle's own `index_select` on the backend's
/// storage, so an index of `u32::MAX` yields a zero row there as in candle (the padding rows use
/// it). The backward gathers with candle's `index_select`: candle detaches gradients by default,
/// so it records nothing; a second-order gradient (with `CANDLE_GRAD_DO_NOT_DETACH`) would go
/// through `index_add`.
pub struct GatherRows {
    /// (n · grad_fold,) u32: for each gradient row of the source, the output row it reads.
    pub grad_index: Tensor,
    pub grad_fold: usize,
    /// Elements per row: the source is read as (elements / width, width) rows.
    width: usize,
    /// The output's shape: (index rows · width) elements.
    out_shape: Shape,
}

impl GatherRows {
    /// `src[index]` for src (N, …) and index (M,) u32, rows along dim 0: (M, …); the gradient
    /// as described on the type.
    pub fn apply(
        src: &Tensor,
        index: &Tensor,
        grad_index: &Tensor,
        grad_fold: usize,
    ) -> Result<Tensor> {
        let mut dims = src.dims().to_vec();
        let Some(first) = dims.first_mut() else {
            candle_core::bail!("gather-rows: a scalar source")
        };
        let width = src.elem_count() / (*first).max(1);
        *first = index.dims1()?;
        Self::build(src, index, grad_index, grad_fold, width, Shape::from(dims))
    }

    /// As [`GatherRows::apply`], with src read as rows of its last dim (any leading dims
    /// flattened) and the (M, last dim) result given the shape `out_shape`: one graph node
    /// instead of a gather between two reshapes, each of which would cost the backward pass a
    /// full-size gradient accumulation.
    pub fn apply_shaped(
        src: &Tensor,
        index: &Tensor,
        grad_index: &Tensor,
        grad_fold: usize,
        out_shape: impl Into<Shape>,
    ) -> Result<Tensor> {
        let width = *src
            .dims()
            .last()
            .ok_or_else(|| candle_core::Error::Msg("gather-rows: a scalar source".into()))?;
        Self::build(src, index, grad_index, grad_fold, width, out_shape.into())
    }

    fn build(
        src: &Tensor,
        index: &Tensor,
        grad_index: &Tensor,
        grad_fold: usize,
        width: usize,
        out_shape: Shape,
    ) -> Result<Tensor> {
        if out_shape.elem_count() != index.dims1()? * width {
            candle_core::bail!(
                "gather-rows: {} rows of {width} cannot have the shape {out_shape:?}",
                index.dims1()?
            )
        }
        // The CUDA and CPU index_select kernels read a contiguous source.
        src.contiguous()?.apply_op2(
            index,
            GatherRows {
                grad_index: grad_index.clone(),
                grad_fold,
                width,
                out_shape,
            },
        )
    }

    /// The source as contiguous (rows, width).
    fn rows_layout(&self, src: &Layout) -> Result<Layout> {
        if !src.is_contiguous() {
            candle_core::bail!("gather-rows: the source must be contiguous")
        }
        let n = src.shape().elem_count();
        Ok(Layout::contiguous_with_offset(
            (n / self.width, self.width),
            src.start_offset(),
        ))
    }
}
impl CustomOp2 for GatherRows {
    fn name(&self) -> &'static str {
        "moe-gather-rows"
    }

    fn cpu_fwd(
        &self,
        src: &CpuStorage,
        src_l: &Layout,
        index: &CpuStorage,
        index_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = src.index_select(index, &self.rows_layout(src_l)?, index_l, 0)?;
        Ok((out, self.out_shape.clone()))
    }

    fn cuda_fwd(
        &self,
        src: &CudaStorage,
        src_l: &Layout,
        index: &CudaStorage,
        index_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let out = src.index_select(index, &self.rows_layout(src_l)?, index_l, 0)?;
        Ok((out, self.out_shape.clone()))
    }

    fn metal_fwd(
        &self,
        src: &MetalStorage,
        src_l: &Layout,
        index: &MetalStorage,
        index_l: &Layout,
    ) -> Result<(MetalStorage, Shape)> {
        let out = src.index_select(index, &self.rows_layout(src_l)?, index_l, 0)?;
        Ok((out, self.out_shape.clone()))
    }

    fn bwd(
        &self,
        src: &Tensor,
        index: &Tensor,
        _out: &Tensor,
        grad_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = grad_out
            .contiguous()?
            .reshape((index.dims1()?, self.width))?
            .index_select(&self.grad_index, 0)?;
        let n = src.elem_count() / self.width;
        let grad_src = if self.grad_fold == 1 {
            rows
        } else {
            rows.reshape((n, self.grad_fold, self.width))?.sum(1)?
        };
        if grad_src.elem_count() != src.elem_count() {
            candle_core::bail!(
                "gather-rows: gradient {:?} for a source {:?}",
                grad_src.dims(),
                src.dims()
            )
        }
        Ok((Some(grad_src.reshape(src.dims())?), None))
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
    /// Random init (scaled normal), reproducible per device RNG state.
    pub fn new(config: MoeConfig, device: &Device) -> Result<Self> {
        config.validate().map_err(candle_core::Error::Msg)?;
        let MoeConfig { d, e, f, dtype, .. } = config;
        let init = |shape: &[usize], fan_in: usize| -> Result<Var> {
            let t = Tensor::randn(0f32, (1.0 / fan_in as f64).sqrt() as f32, shape, device)?
                .to_dtype(dtype)?;
            Var::from_tensor(&t)
        };
        let router = init(&[d, e], d)?;
        let experts = (0..e)
            .map(|_| {
                Ok(Expert {
                    gate: init(&[d, f], d)?,
                    up: init(&[d, f], d)?,
                    down: init(&[f, d], f)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            router,
            experts,
            syncs: Cell::new(0),
            last_layout: Cell::new(None),
            sorted_capacity: Cell::new(SortedCapacity::default()),
            sorted_consts: RefCell::new(None),
        })
    }

    /// Builds a block from stacked weights: router (D, E), gate and up (E, D, F), down (E, F, D).
    pub fn from_tensors(
        config: MoeConfig,
        router: &Tensor,
        w_gate: &Tensor,
        w_up: &Tensor,
        w_down: &Tensor,
    ) -> Result<Self> {
        let v = |t: &Tensor| Var::from_tensor(&t.to_dtype(config.dtype)?);
        let experts = (0..config.e)
            .map(|i| {
                Ok(Expert {
                    gate: v(&w_gate.get(i)?)?,
                    up: v(&w_up.get(i)?)?,
                    down: v(&w_down.get(i)?)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            router: v(router)?,
            experts,
            syncs: Cell::new(0),
            last_layout: Cell::new(None),
            sorted_capacity: Cell::new(SortedCapacity::default()),
            sorted_consts: RefCell::new(None),
        })
    }

    /// The experts' weights stacked: gate and up (E, D, F), down (E, F, D).
    ///
    /// A `cat` of the (D, F) matrices along their rows, reshaped, rather than `Tensor::stack`:
    /// stack unsqueezes every expert first, and each of those E reshape nodes costs the backward
    /// pass one more gradient accumulation (a zero fill and an add per expert and weight, as
    /// candle's backprop accumulates every node's gradient). Forward: E copies per weight;
    /// backward: E + 1 accumulations per weight instead of 2·E.
    pub fn stacked(&self) -> Result<(Tensor, Tensor, Tensor)> {
        let stack = |f: &dyn Fn(&Expert) -> &Var| -> Result<Tensor> {
            let ws: Vec<Tensor> = self
                .experts
                .iter()
                .map(|x| f(x).as_tensor().clone())
                .collect();
            let (rows, cols) = ws[0].dims2()?;
            Tensor::cat(&ws, 0)?.reshape((ws.len(), rows, cols))
        };
        Ok((
            stack(&|x| &x.gate)?,
            stack(&|x| &x.up)?,
            stack(&|x| &x.down)?,
        ))
    }

    /// The same weights on another device and dtype.
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let c = MoeConfig {
            dtype,
            ..self.config
        };
        let (g, u, d) = self.stacked()?;
        let r = self.router.as_tensor().to_device(device)?;
        Self::from_tensors(
            c,
            &r,
            &g.to_device(device)?,
            &u.to_device(device)?,
            &d.to_device(device)?,
        )
    }

    /// Every parameter: the router, then gate, up, down of each expert in order.
    pub fn vars(&self) -> Vec<Var> {
        let mut v = vec![self.router.clone()];
        for x in &self.experts {
            v.extend([x.gate.clone(), x.up.clone(), x.down.clone()]);
        }
        v
    }

    /// A name per entry of `vars()`, for messages.
    pub fn var_names(&self) -> Vec<String> {
        let mut v = vec!["router".to_string()];
        for i in 0..self.experts.len() {
            v.extend([
                format!("expert{i}.gate"),
                format!("expert{i}.up"),
                format!("expert{i}.down"),
            ]);
        }
        v
    }

    /// How `sorted` sizes its capacity layout (default [`SortedCapacity::Busiest`]).
    pub fn sorted_capacity(&self) -> SortedCapacity {
        self.sorted_capacity.get()
    }

    /// Sets how `sorted` sizes its capacity layout; both choices are exact.
    pub fn set_sorted_capacity(&self, capacity: SortedCapacity) {
        self.sorted_capacity.set(capacity);
    }

    /// Host syncs issued so far by forward passes.
    pub fn host_syncs(&self) -> usize {
        self.syncs.get()
    }

    /// The capacity layout of the last `sorted` forward (or `route`), if any: its padding rows
    /// are FLOPs the batched matmuls spend on zeros.
    pub fn last_capacity_layout(&self) -> Option<CapacityLayout> {
        self.last_layout.get()
    }

    fn read<T: candle_core::WithDType>(&self, t: &Tensor) -> Result<Vec<Vec<T>>> {
        self.syncs.set(self.syncs.get() + 1);
        t.to_vec2::<T>()
    }

    /// Expert `e`'s SwiGLU on rows `x` (n, D) → (n, D).
    fn expert(&self, x: &Tensor, e: usize) -> Result<Tensor> {
        let w = &self.experts[e];
        let g = x.matmul(w.gate.as_tensor())?;
        let u = x.matmul(w.up.as_tensor())?;
        (g.silu()? * u)?.matmul(w.down.as_tensor())
    }

    /// Router probabilities (T, E) in f32.
    pub fn probs(&self, x: &Tensor) -> Result<Tensor> {
        softmax_f32(&x.matmul(self.router.as_tensor())?)
    }

    /// Device-side top-K: indices (T, K) u32 and renormalised gates (T, K) in the block's dtype.
    fn device_topk(&self, probs: &Tensor) -> Result<(Tensor, Tensor)> {
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

    /// Only the routing part of `forward` under `dispatch` (router matmul, softmax, top-K, and
    /// the host read or the device mask): for timing where the forward's time goes.
    pub fn route(&self, x: &Tensor, dispatch: Dispatch) -> Result<()> {
        self.strategy_route(x, dispatch)
    }

    /// `host-topk`'s routing: the probabilities read to the host.
    fn route_on_host(&self, x: &Tensor) -> Result<()> {
        self.read::<f32>(&self.probs(x)?.to_dtype(DType::F32)?)?;
        Ok(())
    }

    /// Device top-K, the chosen ids read to the host (`gather`, `scatter-add`, `onehot-mm`).
    fn route_device_topk(&self, x: &Tensor) -> Result<()> {
        let (idx, _) = self.device_topk(&self.probs(x)?)?;
        self.read::<u32>(&idx)?;
        Ok(())
    }

    /// Device top-K into the gate matrix, no host read (`dense`).
    fn route_gate_matrix(&self, x: &Tensor) -> Result<()> {
        let (idx, gates) = self.device_topk(&self.probs(x)?)?;
        self.gate_matrix(&idx, &gates)?;
        Ok(())
    }

    /// `sorted`'s own routing: top-K of the logits, no full softmax.
    fn route_sorted(&self, x: &Tensor) -> Result<()> {
        self.sorted_routing(x).map(|_| ())
    }

    /// `auto`: times one training step (forward, then backward of the output's sum) of every
    /// strategy that trains the router, on `x` and this block's device, and picks the fastest by
    /// median of `iters` synchronised steps after a warm-up. A strategy whose step fails (today
    /// `scatter-add`, whose backward candle 0.11.1 cannot compute) is listed with its error and
    /// never picked. The crossovers move with D, T, dtype and device, so they are measured where
    /// the block runs rather than read from a table.
    pub fn auto_dispatch(&self, x: &Tensor, iters: usize) -> Result<AutoChoice> {
        let timing = harness::timing::TimingConfig {
            iters: iters.max(1),
            warmup_iters: 1,
            warmup_min: std::time::Duration::ZERO,
        };
        let mut timings = Vec::new();
        for dispatch in Dispatch::ALL.into_iter().filter(|d| d.trains_router()) {
            let step = harness::timing::measure(x.device(), &timing, || {
                self.forward(x, dispatch)?.sum_all()?.backward().map(|_| ())
            });
            timings.push((
                dispatch,
                step.map(|s| s.median_ms).map_err(|e: candle_core::Error| {
                    e.to_string().lines().next().unwrap_or("").to_string()
                }),
            ));
        }
        let best = timings
            .iter()
            .filter_map(|(d, t)| t.as_ref().ok().map(|ms| (*d, *ms)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(d, _)| d)
            .ok_or_else(|| {
                candle_core::Error::Msg("auto: no strategy could run a training step".into())
            })?;
        Ok(AutoChoice {
            dispatch: best,
            timings_ms: timings,
        })
    }

    /// `x + moe(x)` for x (T, D).
    pub fn forward(&self, x: &Tensor, dispatch: Dispatch) -> Result<Tensor> {
        let y = self.strategy_forward(x, dispatch)?;
        if cfg!(feature = "planted-bug-no-residual") {
            // A deliberate bug shared by every strategy, for tests/reference_parity.rs to catch.
            return Ok(y);
        }
        x + y
    }

    /// mixtral.rs's algorithm.
    fn host_topk_forward(&self, x: &Tensor) -> Result<Tensor> {
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

    /// `gather` and `scatter-add`: experts on their tokens only, gates from the device.
    fn gather_forward(&self, x: &Tensor) -> Result<Tensor> {
        self.sparse_forward(x, Dispatch::Gather)
    }

    fn scatter_add_forward(&self, x: &Tensor) -> Result<Tensor> {
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

    /// Gates (T, E): the renormalised top-K probabilities at the selected experts, zero elsewhere.
    fn gate_matrix(&self, idx: &Tensor, gates: &Tensor) -> Result<Tensor> {
        let e_count = self.config.e;
        let experts =
            Tensor::arange(0u32, e_count as u32, idx.device())?.reshape((1, 1, e_count))?;
        let one_hot = idx
            .unsqueeze(2)?
            .broadcast_eq(&experts)?
            .to_dtype(self.config.dtype)?; // (T, K, E)
        one_hot.broadcast_mul(&gates.unsqueeze(2)?)?.sum(1)
    }

    /// Experts on their tokens, rows picked and added back by one-hot matmuls.
    fn onehot_forward(&self, x: &Tensor) -> Result<Tensor> {
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
    fn sorted_forward(&self, x: &Tensor) -> Result<Tensor> {
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

    /// Every expert on every token; the top-K mask built on the device. No host sync.
    fn dense_forward(&self, x: &Tensor) -> Result<Tensor> {
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
