//! The block's configuration and parameters (`MoeConfig`, `Expert`, `MoeBlock`): construction,
//! weight access, host-sync accounting, one expert's SwiGLU, and `forward` (strategy + residual).

use crate::strategies::sorted::{CapacityLayout, SortedCapacity, SortedConsts};
use crate::Dispatch;
use candle_core::{DType, Device, Result, Tensor, Var};
use std::cell::{Cell, RefCell};

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
    pub(crate) last_layout: Cell<Option<CapacityLayout>>,
    /// How `sorted` sizes its capacity layout.
    pub(crate) sorted_capacity: Cell<SortedCapacity>,
    /// `sorted`'s index constants for the last (T, device), so that a forward uploads nothing.
    pub(crate) sorted_consts: RefCell<Option<SortedConsts>>,
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

    pub(crate) fn read<T: candle_core::WithDType>(&self, t: &Tensor) -> Result<Vec<Vec<T>>> {
        self.syncs.set(self.syncs.get() + 1);
        t.to_vec2::<T>()
    }

    /// Expert `e`'s SwiGLU on rows `x` (n, D) → (n, D).
    pub(crate) fn expert(&self, x: &Tensor, e: usize) -> Result<Tensor> {
        let w = &self.experts[e];
        let g = x.matmul(w.gate.as_tensor())?;
        let u = x.matmul(w.up.as_tensor())?;
        (g.silu()? * u)?.matmul(w.down.as_tensor())
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
}
