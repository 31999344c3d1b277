//! Which of candle's Metal paths each sweep op's forward call goes through: the hand mapping,
//! one line per op in `ROUTES` (op, route, the candle function it follows), the routes below
//! listing the dispatch requests in the order that function issues them. Layouts are candle's
//! own: the inputs are materialised on the CPU in the cell's layouts and views (`t()`,
//! `broadcast_as`, `transpose`) are applied there; a kernel's output is contiguous. Only the
//! forward call is followed (`adamw_step`'s call includes its backward step and the update).

use super::layouts::{broadcast, contiguous, outer_stride_for_dim, scalar};
use super::rust_src::Key;
use super::steps::{affine, by_layout, cast, BinOp, Step};
use super::tables::*;
use candle_core::{DType, Layout, Tensor};

/// A cell as a route sees it: dtypes, variant, and the inputs on the CPU in their layouts.
pub struct Ctx {
    pub dtype: DType,
    pub aux: Option<DType>,
    pub variant: usize,
    pub t: Vec<Tensor>,
}

impl Ctx {
    fn l(&self, i: usize) -> Layout {
        self.t[i].layout().clone()
    }
    fn dims(&self, i: usize) -> Vec<usize> {
        self.t[i].dims().to_vec()
    }
    fn aux(&self) -> DType {
        self.aux.unwrap_or(DType::U32)
    }
    fn contiguous(&self, i: usize) -> bool {
        self.t[i].is_contiguous()
    }
}

type Route = fn(&Ctx) -> Result<Vec<Step>, String>;

/// The hand mapping: sweep op → route → the candle function(s) it follows.
#[rustfmt::skip]
pub const ROUTES: &[(&str, Route, &str)] = &[
    ("index_select", index_select, "tensor.rs:index_select → metal_backend:index_select"),
    ("gather", gather, "tensor.rs:gather → metal_backend:gather"),
    ("scatter", |c| scatter(c, SCATTER_LAYOUTS, SCATTER), "tensor.rs:scatter → copy_strided_src, scatter_set"),
    ("scatter_add", |c| scatter(c, SCATTER_ADD_LAYOUTS, SCATTER_ADD), "tensor.rs:scatter_add → copy_strided_src, scatter_add_set"),
    ("index_add", index_add, "metal_backend:index_add (copy_strided_src, then the kernel)"),
    ("cat", cat, "tensor_cat.rs:cat → cat_contiguous (copy2d) or cat0 (copy_strided_src)"),
    ("arg_sort_last_dim", arg_sort, "sort.rs:arg_sort_last_dim → ArgSort::metal_fwd"),
    ("to_dtype", |c| Ok(cast(c.dtype, c.aux(), &c.l(0))), "tensor.rs:to_dtype → metal_backend:to_dtype"),
    ("contiguous", |c| Ok(vec![Step::Copy(c.dtype, c.l(0))]), "tensor.rs:contiguous → copy_strided_src"),
    ("matmul", matmul, "tensor.rs:matmul → metal_backend:matmul → call_mlx_gemm"),
    ("broadcast_matmul", broadcast_matmul, "tensor.rs:broadcast_matmul → reshape/contiguous, matmul"),
    ("softmax_last_dim", softmax_last_dim, "candle-nn ops.rs:SoftmaxLastDim::metal_fwd"),
    ("softmax", |c| softmax(c, false), "candle-nn ops.rs:softmax (max, sub, exp, sum, div)"),
    ("log_softmax", |c| softmax(c, true), "candle-nn ops.rs:log_softmax (max, sub, exp, sum, log, sub)"),
    ("silu", |c| unary(c, "silu"), "candle-nn ops.rs:silu → tensor.rs:silu → unary_impl"),
    ("sigmoid", |c| Ok(vec![by_layout(SIGMOID_C, SIGMOID_S, c.dtype, &c.l(0))]), "candle-nn ops.rs:Sigmoid::metal_fwd"),
    ("rms_norm", rms_norm, "candle-nn ops.rs:rms_norm → RmsNorm::metal_fwd"),
    ("where_cond", where_cond, "metal_backend:where_cond"),
    ("cmp", cmp, "tensor.rs:cmp → metal_backend:cmp → binary"),
    ("sum_keepdim", |c| reduce(c, "Sum"), "tensor.rs:sum_keepdim → reduce_op"),
    ("max_keepdim", |c| reduce(c, "Max"), "tensor.rs:max_keepdim → reduce_op"),
    ("argmax_keepdim", |c| reduce(c, "ArgMax"), "tensor.rs:argmax_keepdim → reduce_op"),
    ("exp", |c| unary(c, "exp"), "tensor.rs:exp → unary_impl"),
    ("log", |c| unary(c, "log"), "tensor.rs:log → unary_impl"),
    ("sqrt", |c| unary(c, "sqrt"), "tensor.rs:sqrt → unary_impl"),
    ("tanh", |c| unary(c, "tanh"), "tensor.rs:tanh → unary_impl"),
    ("relu", |c| unary(c, "relu"), "tensor.rs:relu → unary_impl"),
    ("gelu", |c| unary(c, "gelu"), "tensor.rs:gelu → unary_impl"),
    ("gelu_erf", |c| unary(c, "gelu_erf"), "tensor.rs:gelu_erf → unary_impl"),
    ("affine", |c| Ok(vec![affine(c.dtype, &c.l(0))]), "tensor.rs:affine → metal_backend:affine"),
    ("powf", |c| Ok(vec![by_layout(POWF_C, POWF_S, c.dtype, &c.l(0))]), "tensor.rs:powf → metal_backend:powf"),
    ("clamp", clamp, "tensor.rs:clamp → maximum, minimum (a scalar broadcast) → binary"),
    ("mean_keepdim", mean_keepdim, "tensor.rs:mean_keepdim → reduce_op, affine"),
    ("min_keepdim", |c| reduce(c, "Min"), "tensor.rs:min_keepdim → reduce_op"),
    ("argmin_keepdim", |c| reduce(c, "ArgMin"), "tensor.rs:argmin_keepdim → reduce_op"),
    ("cumsum", cumsum, "tensor.rs:cumsum → triu2 (ge, to_dtype), broadcast_matmul"),
    ("layer_norm", layer_norm, "candle-nn ops.rs:layer_norm → LayerNorm::metal_fwd"),
    ("layer_norm_module", |c| norm_module(c, true), "candle-nn layer_norm.rs:LayerNorm::forward"),
    ("rms_norm_module", |c| norm_module(c, false), "candle-nn layer_norm.rs:RmsNorm::forward"),
    ("rope_i", |c| rope(c, "rope_i", ROPE_I), "candle-nn rotary_emb.rs:rope_i → RotaryEmbI::metal_fwd"),
    ("rope", |c| rope(c, "rope", ROPE), "candle-nn rotary_emb.rs:rope → RotaryEmb::metal_fwd"),
    ("rope_thd", |c| rope(c, "rope_thd", ROPE_THD), "candle-nn rotary_emb.rs:rope_thd → RotaryEmbThd::metal_fwd"),
    ("linear", linear, "candle-nn linear.rs:Linear::forward (matmul, broadcast_add)"),
    ("embedding", embedding, "candle-nn embedding.rs:Embedding::forward (flatten_all, index_select)"),
    ("nll", |c| Ok(nll(c, c.l(0))), "candle-nn loss.rs:nll (gather, sum_all, affine)"),
    ("cross_entropy", cross_entropy, "candle-nn loss.rs:cross_entropy (log_softmax, nll)"),
    ("sort_last_dim", sort_last_dim, "sort.rs:sort_last_dim (arg_sort, gather)"),
    ("adamw_step", adamw_step, "candle-nn optim.rs:AdamW (make_var, backward_step: mul, sum, backward, step)"),
    ("add", |c| binary(c, "Add", false), "tensor.rs:add → binary_impl"),
    ("sub", |c| binary(c, "Sub", false), "tensor.rs:sub → binary_impl"),
    ("mul", |c| binary(c, "Mul", false), "tensor.rs:mul → binary_impl"),
    ("div", |c| binary(c, "Div", false), "tensor.rs:div → binary_impl"),
    ("maximum", |c| binary(c, "Maximum", false), "tensor.rs:maximum → binary_impl"),
    ("minimum", |c| binary(c, "Minimum", false), "tensor.rs:minimum → binary_impl"),
    ("pow", |c| pow(c, false), "tensor.rs:pow (log, mul, exp)"),
    ("broadcast_add", |c| binary(c, "Add", true), "tensor.rs:broadcast_add → broadcast_as, add"),
    ("broadcast_sub", |c| binary(c, "Sub", true), "tensor.rs:broadcast_sub → broadcast_as, sub"),
    ("broadcast_mul", |c| binary(c, "Mul", true), "tensor.rs:broadcast_mul → broadcast_as, mul"),
    ("broadcast_div", |c| binary(c, "Div", true), "tensor.rs:broadcast_div → broadcast_as, div"),
    ("broadcast_maximum", |c| binary(c, "Maximum", true), "tensor.rs:broadcast_maximum → broadcast_as, maximum"),
    ("broadcast_minimum", |c| binary(c, "Minimum", true), "tensor.rs:broadcast_minimum → broadcast_as, minimum"),
    ("broadcast_pow", |c| pow(c, true), "tensor.rs:broadcast_pow (log, broadcast_mul, exp)"),
    ("div_by_zero", |c| binary(c, "Div", false), "tensor.rs:div → binary_impl"),
    ("compare", |c| compare(c, false), "tensor.rs:eq … ge → cmp → binary"),
    ("broadcast_compare", |c| compare(c, true), "tensor.rs:broadcast_eq … broadcast_ge → broadcast_as, cmp → binary"),
    ("tensor_from_host", tensor_from_host, "tensor.rs:new/from_vec/from_slice/from_iter (upload, no kernel); the input read back by to_vec1 (copy_strided_src when not contiguous)"),
    ("tensor_embedding", index_select, "tensor.rs:embedding → index_select → metal_backend:index_select"),
];

/// Reading the input back (`flatten_all` copies a non-contiguous one), then an upload.
fn tensor_from_host(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(if c.contiguous(0) {
        Vec::new()
    } else {
        vec![Step::Copy(c.dtype, c.l(0))]
    })
}

pub fn route(op: &str) -> Option<Route> {
    ROUTES
        .iter()
        .find(|(name, ..)| *name == op)
        .map(|(_, r, _)| *r)
        .or_else(|| super::unmodelled::is_unmodelled(op).then_some(unmodelled as Route))
}

/// The route of an op in `unmodelled::UNMODELLED`: unknown, saying why.
fn unmodelled(_: &Ctx) -> Result<Vec<Step>, String> {
    Ok(vec![Step::Unknown(
        "this op's Metal path is not modelled by the prediction yet (metal::unmodelled)".into(),
    )])
}

fn index_select(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(vec![
        Step::Guard(INDEX_SELECT_IDS, c.contiguous(1)),
        Step::Kernel(INDEX_SELECT, vec![Key::dtype(c.aux()), Key::dtype(c.dtype)]),
    ])
}

fn gather(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(vec![
        Step::Guard(GATHER_IDS, c.contiguous(1)),
        Step::Kernel(GATHER, vec![Key::dtype(c.aux()), Key::dtype(c.dtype)]),
    ])
}

/// scatter / scatter_add: `self` copied to a fresh (contiguous) buffer, then the kernel, whose
/// guard wants the ids and the source contiguous.
fn scatter(
    c: &Ctx,
    guard: super::dispatch::Guard,
    table: super::dispatch::Table,
) -> Result<Vec<Step>, String> {
    Ok(vec![
        Step::Copy(c.dtype, c.l(0)),
        Step::Guard(guard, c.contiguous(1) && c.contiguous(2)),
        Step::Kernel(table, vec![Key::dtype(c.aux()), Key::dtype(c.dtype)]),
    ])
}

fn index_add(c: &Ctx) -> Result<Vec<Step>, String> {
    scatter(c, INDEX_ADD_LAYOUTS, INDEX_ADD)
}

/// `Tensor::cat`: `copy2d` per input when every input is contiguous or has an outer stride for
/// the dim; otherwise `cat0` (after `transpose(0, dim)`) copies each input strided.
fn cat(c: &Ctx) -> Result<Vec<Step>, String> {
    let dim = c.variant;
    let compat =
        c.t.iter()
            .all(|t| t.is_contiguous() || outer_stride_for_dim(t.layout(), dim).is_some());
    let cat_len: usize = c.t.iter().map(|t| t.dims()[dim]).sum();
    let mut steps = Vec::new();
    for t in &c.t {
        let dims = t.dims();
        if compat {
            let block: usize = dims[dim + 1..].iter().product();
            let d1: usize = dims[..dim].iter().product();
            let d2 = block * dims[dim];
            let src_s = if t.is_contiguous() {
                d2
            } else {
                outer_stride_for_dim(t.layout(), dim).unwrap_or(d2)
            };
            steps.push(Step::Copy2d(c.dtype, [d1, d2, src_s, block * cat_len]));
        } else {
            let arg = t.transpose(0, dim).map_err(|e| e.to_string())?;
            steps.push(Step::Copy(c.dtype, arg.layout().clone()));
        }
    }
    Ok(steps)
}

fn arg_sort_steps(c: &Ctx, contiguous: bool) -> Vec<Step> {
    let table = if c.variant == 0 {
        ASORT_ASC
    } else {
        ASORT_DESC
    };
    vec![
        Step::Guard(ARGSORT_LAYOUT, contiguous),
        Step::Kernel(table, vec![Key::dtype(c.dtype)]),
    ]
}

fn arg_sort(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(arg_sort_steps(c, c.contiguous(0)))
}

fn sort_last_dim(c: &Ctx) -> Result<Vec<Step>, String> {
    let mut steps = vec![Step::Guard(SORT_LAYOUT, c.contiguous(0))];
    steps.extend(arg_sort_steps(c, true));
    steps.push(Step::Guard(GATHER_IDS, true));
    steps.push(Step::Kernel(
        GATHER,
        vec![Key::dtype(DType::U32), Key::dtype(c.dtype)],
    ));
    Ok(steps)
}

/// `a.matmul(b)` of two operands of rank 2 or 3: (b, m, n, k) from their dims.
fn gemm(dtype: DType, a: &Layout, b: &Layout) -> Step {
    let (ad, bd) = (a.dims(), b.dims());
    let batch: usize = ad[..ad.len() - 2].iter().product();
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    Step::Gemm(dtype, a.clone(), b.clone(), [batch, m, n, k])
}

fn matmul(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(vec![gemm(c.dtype, &c.l(0), &c.l(1))])
}

/// `broadcast_matmul` of (b, m, k) by (k, n): a contiguous lhs is folded to (b·m, k); otherwise
/// the rhs is broadcast to (b, k, n) and made contiguous first.
fn broadcast_matmul(c: &Ctx) -> Result<Vec<Step>, String> {
    let (a, b) = (c.dims(0), c.dims(1));
    if c.contiguous(0) {
        let folded =
            Layout::contiguous_with_offset(&[a[0] * a[1], a[2]][..], c.l(0).start_offset());
        return Ok(vec![gemm(c.dtype, &folded, &c.l(1))]);
    }
    let rhs = c.t[1]
        .broadcast_as(&[a[0], b[0], b[1]][..])
        .map_err(|e| e.to_string())?;
    Ok(vec![
        Step::Copy(c.dtype, rhs.layout().clone()),
        gemm(c.dtype, &c.l(0), &contiguous(&[a[0], b[0], b[1]])),
    ])
}

fn softmax_last_dim(c: &Ctx) -> Result<Vec<Step>, String> {
    let l = c.l(0);
    let last_unit = l.stride().last() == Some(&1);
    Ok(vec![
        Step::Kernel(SOFTMAX_LAST, vec![Key::dtype(c.dtype)]),
        Step::Guard(SOFTMAX_LAYOUT, l.is_contiguous() && last_unit),
    ])
}

/// `softmax` / `log_softmax` over the cell's dim of the layout `l` (shape `s`).
fn softmax_steps(dtype: DType, l: &Layout, dim: usize, log: bool) -> Vec<Step> {
    let s = l.dims().to_vec();
    let mut ms = s.clone();
    ms[dim] = 1;
    let (full, bcast) = (contiguous(&s), broadcast(&ms, &s));
    let mut steps = vec![
        Step::Reduce("Max", dtype, l.clone(), vec![dim]),
        Step::Binary(BinOp::Op("Sub"), dtype, l.clone(), bcast.clone()),
        Step::Unary("exp", dtype, true),
        Step::Reduce("Sum", dtype, full.clone(), vec![dim]),
    ];
    if log {
        steps.push(Step::Unary("log", dtype, true));
        steps.push(Step::Binary(BinOp::Op("Sub"), dtype, full, bcast));
    } else {
        steps.push(Step::Binary(BinOp::Op("Div"), dtype, full, bcast));
    }
    steps
}

fn softmax(c: &Ctx, log: bool) -> Result<Vec<Step>, String> {
    Ok(softmax_steps(c.dtype, &c.l(0), c.variant, log))
}

fn unary(c: &Ctx, method: &'static str) -> Result<Vec<Step>, String> {
    Ok(vec![Step::Unary(method, c.dtype, c.contiguous(0))])
}

fn rms_norm(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(vec![
        Step::Kernel(RMSNORM, vec![Key::dtype(c.dtype); 2]),
        Step::Guard(RMSNORM_LAYOUT, c.contiguous(0) && c.contiguous(1)),
    ])
}

fn layer_norm(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(vec![
        Step::Kernel(LAYERNORM, vec![Key::dtype(c.dtype); 3]),
        Step::Guard(LAYERNORM_LAYOUT, (0..3).all(|i| c.contiguous(i))),
    ])
}

fn where_cond(c: &Ctx) -> Result<Vec<Step>, String> {
    let key = vec![Key::dtype(c.aux()), Key::dtype(c.dtype)];
    Ok(vec![Step::Kernel(WHERE, key)])
}

fn cmp(c: &Ctx) -> Result<Vec<Step>, String> {
    const CMP: [&str; 6] = ["Eq", "Ne", "Lt", "Le", "Gt", "Ge"];
    Ok(vec![Step::Binary(
        BinOp::Cmp(CMP[c.variant]),
        c.dtype,
        c.l(0),
        c.l(1),
    )])
}

fn reduce(c: &Ctx, op: &'static str) -> Result<Vec<Step>, String> {
    Ok(vec![Step::Reduce(op, c.dtype, c.l(0), vec![c.variant])])
}

fn mean_keepdim(c: &Ctx) -> Result<Vec<Step>, String> {
    let mut ms = c.dims(0);
    ms[c.variant] = 1;
    Ok(vec![
        Step::Reduce("Sum", c.dtype, c.l(0), vec![c.variant]),
        affine(c.dtype, &contiguous(&ms)),
    ])
}

/// `x.clamp(-1.0, 1.0)`: `maximum` then `minimum` against an f64 scalar converted to the
/// dtype and broadcast.
fn clamp(c: &Ctx) -> Result<Vec<Step>, String> {
    let s = c.dims(0);
    Ok(vec![
        Step::Binary(BinOp::Op("Maximum"), c.dtype, c.l(0), scalar(&s)),
        Step::Binary(BinOp::Op("Minimum"), c.dtype, contiguous(&s), scalar(&s)),
    ])
}

/// `cumsum(dim)`: `triu2` (an u32 `ge` of two broadcast aranges, converted from u8 to the
/// dtype), then the input transposed to put `dim` last, times it.
fn cumsum(c: &Ctx) -> Result<Vec<Step>, String> {
    let dim = c.variant;
    let n = c.dims(0)[dim];
    let last = c.t[0].rank() - 1;
    let t = c.t[0].transpose(dim, last).map_err(|e| e.to_string())?;
    let mut steps = vec![Step::Binary(
        BinOp::Cmp("Ge"),
        DType::U32,
        broadcast(&[1, n], &[n, n]),
        broadcast(&[n, 1], &[n, n]),
    )];
    steps.extend(cast(DType::U8, c.dtype, &contiguous(&[n, n])));
    steps.push(gemm(c.dtype, t.layout(), &contiguous(&[n, n])));
    Ok(steps)
}

/// candle-nn's `LayerNorm`/`RmsNorm` modules: the fused op for a contiguous input, otherwise
/// the two-pass path in f32 (for f16/bf16) or the dtype, then the affine part.
fn norm_module(c: &Ctx, remove_mean: bool) -> Result<Vec<Step>, String> {
    if c.contiguous(0) {
        return if remove_mean {
            layer_norm(c)
        } else {
            rms_norm(c)
        };
    }
    let s = c.dims(0);
    let mut ms = s.clone();
    ms[s.len() - 1] = 1;
    let internal = match c.dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    };
    let mut steps = cast(c.dtype, internal, &c.l(0));
    let x = if steps.is_empty() {
        c.l(0)
    } else {
        contiguous(&s)
    };
    let (full, small, bcast) = (contiguous(&s), contiguous(&ms), broadcast(&ms, &s));
    let last = vec![s.len() - 1];
    let x = if remove_mean {
        steps.push(Step::Reduce("Sum", internal, x.clone(), last.clone()));
        steps.push(affine(internal, &small));
        steps.push(Step::Binary(BinOp::Op("Sub"), internal, x, bcast.clone()));
        full.clone()
    } else {
        x
    };
    steps.push(Step::Unary("sqr", internal, x.is_contiguous()));
    steps.push(Step::Reduce("Sum", internal, full.clone(), last));
    steps.extend([affine(internal, &small), affine(internal, &small)]);
    steps.push(Step::Unary("sqrt", internal, true));
    steps.push(Step::Binary(BinOp::Op("Div"), internal, x, bcast));
    steps.extend(cast(internal, c.dtype, &full));
    let alpha = c.t[1]
        .broadcast_as(s.as_slice())
        .map_err(|e| e.to_string())?;
    steps.push(Step::Binary(
        BinOp::Op("Mul"),
        c.dtype,
        full.clone(),
        alpha.layout().clone(),
    ));
    if remove_mean {
        let beta = c.t[2]
            .broadcast_as(s.as_slice())
            .map_err(|e| e.to_string())?;
        steps.push(Step::Binary(
            BinOp::Op("Add"),
            c.dtype,
            full,
            beta.layout().clone(),
        ));
    }
    Ok(steps)
}

fn rope(c: &Ctx, op: &str, table: super::dispatch::Table) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = rope_guards(op)
        .into_iter()
        .zip(0..3)
        .map(|(g, i)| Step::Guard(g, c.contiguous(i)))
        .collect();
    steps.push(Step::Kernel(table, vec![Key::dtype(c.dtype)]));
    Ok(steps)
}

/// `Linear::forward`: x·wᵀ (a 3-D contiguous x folded to 2-D; a 3-D strided one against w
/// broadcast over the batch), then `broadcast_add` of the bias.
fn linear(c: &Ctx) -> Result<Vec<Step>, String> {
    let x = c.dims(0);
    let n = c.dims(1)[0];
    let err = |e: candle_core::Error| e.to_string();
    let wt = c.t[1].t().map_err(err)?;
    let mut steps = if x.len() == 2 || c.contiguous(0) {
        let rows: usize = x[..x.len() - 1].iter().product();
        let xl = Layout::contiguous_with_offset(&[rows, x[x.len() - 1]][..], c.l(0).start_offset());
        let xl = if x.len() == 2 { c.l(0) } else { xl };
        vec![gemm(c.dtype, &xl, wt.layout())]
    } else {
        let wb = c.t[1]
            .broadcast_left(x[0])
            .and_then(|w| w.t())
            .map_err(err)?;
        vec![gemm(c.dtype, &c.l(0), wb.layout())]
    };
    let mut out = x.clone();
    *out.last_mut().unwrap_or(&mut 0) = n;
    let bias = c.t[2].broadcast_as(out.as_slice()).map_err(err)?;
    steps.push(Step::Binary(
        BinOp::Op("Add"),
        c.dtype,
        contiguous(&out),
        bias.layout().clone(),
    ));
    Ok(steps)
}

/// `Embedding::forward`: the ids flattened (copied when strided), then `index_select` on dim 0.
fn embedding(c: &Ctx) -> Result<Vec<Step>, String> {
    Ok(vec![
        Step::Copy(c.aux(), c.l(1)),
        Step::Guard(INDEX_SELECT_IDS, true),
        Step::Kernel(INDEX_SELECT, vec![Key::dtype(c.aux()), Key::dtype(c.dtype)]),
    ])
}

/// `nll(inp, target)` with `inp` in layout `inp`: gather of `target.unsqueeze(1)` along dim 1,
/// `sum_all`, `affine`.
fn nll(c: &Ctx, inp: Layout) -> Vec<Step> {
    let target = c.t[1]
        .unsqueeze(1)
        .map(|t| t.is_contiguous())
        .unwrap_or(false);
    let n = inp.dims()[0];
    vec![
        Step::Guard(GATHER_IDS, target),
        Step::Kernel(GATHER, vec![Key::dtype(c.aux()), Key::dtype(c.dtype)]),
        Step::Reduce("Sum", c.dtype, contiguous(&[n, 1]), vec![0, 1]),
        affine(c.dtype, &contiguous(&[])),
    ]
}

fn cross_entropy(c: &Ctx) -> Result<Vec<Step>, String> {
    let mut steps = softmax_steps(c.dtype, &c.l(0), 1, true);
    steps.extend(nll(c, contiguous(&c.dims(0))));
    Ok(steps)
}

/// `adamw_step`: `Var::from_tensor(p)` (a copy), the loss `sum(p·g)`, its backward pass (the
/// seed `ones_like`, the sum's broadcast gradient added to zeros, the product's two gradients),
/// then AdamW's update of p, m and v; every intermediate is contiguous.
fn adamw_step(c: &Ctx) -> Result<Vec<Step>, String> {
    let dt = c.dtype;
    let s = c.dims(0);
    let full = contiguous(&s);
    let bin = |op: &'static str, rhs: Layout| Step::Binary(BinOp::Op(op), dt, full.clone(), rhs);
    Ok(vec![
        Step::Copy(dt, c.l(0)),
        bin("Mul", c.l(1)),
        Step::Reduce("Sum", dt, full.clone(), (0..s.len()).collect()),
        Step::Kernel(CONST_SET_C, vec![Key::dtype(dt)]),
        bin("Add", scalar(&s)),
        bin("Mul", c.l(1)),
        bin("Add", full.clone()),
        bin("Mul", full.clone()),
        bin("Add", full.clone()),
        affine(dt, &full),
        affine(dt, &full),
        bin("Add", full.clone()),
        affine(dt, &full),
        Step::Unary("sqr", dt, true),
        affine(dt, &full),
        bin("Add", full.clone()),
        affine(dt, &full),
        affine(dt, &full),
        affine(dt, &full),
        Step::Unary("sqrt", dt, true),
        affine(dt, &full),
        bin("Div", full.clone()),
        affine(dt, &full),
        bin("Sub", full.clone()),
    ])
}

/// The rhs's layout as the kernel sees it: its own, or broadcast to the lhs's shape.
fn rhs_layout(c: &Ctx, broadcast: bool) -> Result<Layout, String> {
    if !broadcast {
        return Ok(c.l(1));
    }
    let b = c.t[1].broadcast_as(c.dims(0)).map_err(|e| e.to_string())?;
    Ok(b.layout().clone())
}

/// `a.<op>(&b)` or `a.broadcast_<op>(&b)` (the lhs is never broadcast: its shape is the output's).
fn binary(c: &Ctx, op: &'static str, broadcast: bool) -> Result<Vec<Step>, String> {
    Ok(vec![Step::Binary(
        BinOp::Op(op),
        c.dtype,
        c.l(0),
        rhs_layout(c, broadcast)?,
    )])
}

/// `a.pow(&b)` = `b.mul(&a.log())?.exp()` (`broadcast_mul` for `broadcast_pow`).
fn pow(c: &Ctx, broadcast: bool) -> Result<Vec<Step>, String> {
    let s = c.dims(0);
    Ok(vec![
        Step::Unary("log", c.dtype, c.contiguous(0)),
        Step::Binary(
            BinOp::Op("Mul"),
            c.dtype,
            rhs_layout(c, broadcast)?,
            contiguous(&s),
        ),
        Step::Unary("exp", c.dtype, true),
    ])
}

/// The comparison of the cell's variant (`compare`: eq … ge; `broadcast_compare` the same).
fn compare(c: &Ctx, broadcast: bool) -> Result<Vec<Step>, String> {
    const CMP: [&str; 6] = ["Eq", "Ne", "Lt", "Le", "Gt", "Ge"];
    Ok(vec![Step::Binary(
        BinOp::Cmp(CMP[c.variant]),
        c.dtype,
        c.l(0),
        rhs_layout(c, broadcast)?,
    )])
}
