//! The ops the sweep covers: the ones an MoE transformer's forward and backward pass runs. Each
//! entry says which dtypes and variants it takes, how its size knobs become input shapes, and
//! how to call it three ways — through candle, through the oracle, and as the Rust source a
//! standalone repro prints — side by side, so the three cannot drift apart unnoticed.
//!
//! The entries live by family (`indexing`, `copies`, `compare`, `matmul`, `norms`,
//! `elementwise`, `reductions`, `rope`, `training`, `pool`, with the input builders they share in
//! `elementwise`, `reductions`, `rope`, `training`, `shape`, with the input builders they share in
//! `inputs`); `OPS` below lists them in the sweep's order.

mod binary;
mod compare;
mod conv;
mod copies;
mod coverage;
mod elementwise;
mod indexing;
mod inputs;
mod kvcache;
mod matmul;
mod nnmod;
mod nnops;
mod nnops_losses;
mod norms;
mod pool;
mod quant;
mod reductions;
mod rope;
#[macro_use]
mod shape;
mod shape_fill;
mod training;
mod unary;

use super::cell::{Cell, Input, Place, Rng, Values};
use candle_core::{DType, Tensor};
use harness::host::HostTensor;
use harness::oracle::{self, Rejection};

pub use coverage::qmatmul_bound;
pub use quant::quantized_weights_bound;
pub use training::adamw_step;

/// What the oracle says a cell should return.
#[derive(Clone, Debug)]
pub enum Reference {
    Values(HostTensor),
    /// The call breaks the op's contract; a backend should refuse it.
    Rejected(Rejection),
    /// The op leaves the result undefined (scatter onto one position twice); only error parity
    /// between backends is compared.
    Unspecified(String),
}

impl From<oracle::OracleResult> for Reference {
    fn from(r: oracle::OracleResult) -> Self {
        match r {
            Ok(v) => Reference::Values(v),
            Err(e) => Reference::Rejected(e),
        }
    }
}

/// The error analysis a float output is judged by: each element `i` may differ from the
/// reference by `rel·u·|want_i| + abs·u·M_i` (u: the dtype's unit roundoff), where `M_i`
/// depends on the model. See `exec::bounds`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ErrorModel {
    /// Copies, selections, conversions: one rounding of the exact value on each side.
    Rounded,
    /// Elementwise functions built from exp and a division: a few roundings of the result.
    Elementwise,
    /// Each element sums up to n products of inputs (matmul, sum, index_add, scatter_add):
    /// the classic `n·u·Σ|terms|` bound, with `Σ|terms|` from the oracle run on |inputs|.
    Sum,
    /// Normalising ops (softmax, rms_norm): a relative bound per element that grows with the
    /// row length and with the inputs' magnitude (rounding of `x - max` is relative to `x`).
    Normalised,
    /// Activations whose formula cancels (gelu's `1 + tanh(…)` near −1): a few roundings of
    /// the result plus two of the input's size (`0.5·x·(1 + tanh)` with `tanh` off by one u).
    Activation,
    /// layer_norm: the normalised row's relative bound, on the terms `|alpha·x̂| + |beta|`
    /// (the affine part may cancel).
    NormalisedAffine,
    /// Rotary embeddings: `x0·cos − x1·sin`, two products that may cancel.
    Rotation,
    /// log_softmax: the softmax's relative bound, plus the rounding of `x - logsumexp`, which
    /// is absolute in the size of `x`.
    LogNormalised,
    /// A two-pass variance `Σ(x − m̂)²/(n − 1)`: `(n + 3)·u` relative, plus the mean's rounding
    /// `ε ≤ n·u·max|x|`, which adds `n·ε²/(n − 1) ≤ 2ε²` (the textbook two-pass bound).
    Variance,
    /// Quantized matmul (`QMatMul` on the CPU): candle quantizes the activations to 8 bits per
    /// block (Q8_0/Q8_1 of 32 values, Q8K of 256) before the integer dot products, so each
    /// activation is off by up to half a step, `amax_b/127 · (½ + 127·2⁻¹¹)` with the f16
    /// scale's rounding (Q8K keeps an f32 scale: ½ step), taken as `0.6·amax_b/127`. Output
    /// `j` may then be off by `Σ_b 0.6·amax_b(x)/127 · Σ_{i∈b}|w̃_ij|`, plus for Q4_1/Q5_1 the
    /// f16 block sum `s` (≤ 32·127 steps, rounded to f16 twice: ≤ 3 steps) times the weights'
    /// block minimum (≤ max|w̃| in the block): `3.5·amax_b/127·max_{i∈b}|w̃_ij|`; plus the f32
    /// accumulation of the per-block (or per-16-value) partial sums, `(k/16 + 4)·u(f32)·Σ|x·w̃|`,
    /// and the output's rounding, `2u|want|` (`ops::qmatmul_bound`).
    QuantizedActivations,
    /// Weights quantized to a k-quant format and read back (`QTensor::quantize_imatrix`):
    /// 2 to 6 bits per value in super-blocks of 256 with quantized sub-block scales (and
    /// minimums), fitted to importance weights, so no one value's error is promised; each is
    /// only bounded by its super-block's span, `max(max_b − min_b, max_b|x|)`
    /// (`ops::quantized_weights_bound`). Loose by design: it catches values put in the wrong
    /// block, wrong scales and non-finite results, not the quantization's quality.
    QuantizedWeights,
}

/// How an output is judged against the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutputCheck {
    /// Equal within the dtype's tolerance (exact for integers).
    Values,
    /// Any permutation that sorts each row (ties may come in any order).
    SortsRows,
    /// Any position of a maximum.
    Argmax,
    /// Any position of a minimum.
    Argmin,
}

/// The op a divergence id belongs to (`None` for text that is not a divergence id).
pub fn op_of(id: &str) -> Option<String> {
    id.parse::<super::id::DivergenceId>()
        .ok()
        .map(|d| d.op.to_string())
}

pub struct Op {
    pub name: &'static str,
    /// The call as a reader would write it, for reports.
    pub call: &'static str,
    pub dtypes: &'static [DType],
    /// The op's second dtype and what it is (`index`, `condition`, `target`).
    pub aux: (&'static [DType], &'static str),
    pub variants: &'static [&'static str],
    pub knobs: usize,
    /// Builds the logical inputs (roles, kinds, values) for a cell.
    pub inputs: fn(&Cell, &mut Rng) -> Vec<Input>,
    pub candle: fn(&Cell, &[Tensor]) -> candle_core::Result<Tensor>,
    pub oracle: fn(&Cell, &[HostTensor]) -> Reference,
    /// The candle call as Rust source over the given variable names.
    pub code: fn(&Cell, &[&str]) -> String,
    /// Inputs the backward pass differentiates (when their dtype is a float).
    pub grads: &'static [usize],
    pub check: OutputCheck,
    /// How far a correct backend may be from the oracle's f64 result rounded once (the
    /// forward pass; every backward pass is judged as a sum of products).
    pub error: ErrorModel,
    /// Whether the op takes an index (so out-of-range index cells are generated).
    pub indexed: bool,
    /// Whether every pair of layouts of its first two inputs is enumerated (the operands of a
    /// product, whose kernels pick paths by both strides), not only one non-contiguous input at
    /// a time.
    pub layout_pairs: bool,
    /// The value classes swept beyond the plain ones (forward only): NaN and ±inf at each place
    /// of a reduced line, offset rows, large magnitudes, long rows.
    pub values: &'static [Values],
}

const ALL: &[DType] = &[
    DType::U8,
    DType::U32,
    DType::I64,
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::F64,
];
const FLOATS: &[DType] = &[DType::F16, DType::BF16, DType::F32, DType::F64];
const INDEX: &[DType] = &[DType::U8, DType::U32, DType::I64];
/// Every integer dtype: the index and condition dtypes of the ops whose CPU path takes all of
/// them (scatter_add, index_add, where_cond; gather, index_select and scatter take only `INDEX`).
#[cfg(feature = "i16-i32")]
const EVERY_INT: &[DType] = &[DType::U8, DType::U32, DType::I64, DType::I16, DType::I32];
#[cfg(not(feature = "i16-i32"))]
const EVERY_INT: &[DType] = INDEX;
const DIMS: &[&str] = &["dim 0", "dim 1"];

/// The value classes of an op: NaN, +inf and -inf, each first, in the middle and last of every
/// reduced line, then the classes given.
macro_rules! value_classes {
    ($($extra:ident),*) => {
        &[
            Values::Nan(Place::First),
            Values::Nan(Place::Middle),
            Values::Nan(Place::Last),
            Values::PosInf(Place::First),
            Values::PosInf(Place::Middle),
            Values::PosInf(Place::Last),
            Values::NegInf(Place::First),
            Values::NegInf(Place::Middle),
            Values::NegInf(Place::Last),
            $(Values::$extra),*
        ]
    };
}

/// For max/min and their arg, relu and clamp: only NaN and ±inf change what they compute.
const NON_FINITE: &[Values] = value_classes!();
/// For cumsum: no long rows (candle's cumsum multiplies by an n×n triangular matrix, 16 GiB in
/// f32 at 65,536).
const SCAN: &[Values] = value_classes!(Offset, Large);
/// For the ops that accumulate along a line.
const REDUCTION: &[Values] = value_classes!(Offset, Large, Long);
/// For `sum_keepdim`, the one reduction that takes integers: the reduction classes plus a u8/u32
/// sum that wraps.
const SUM: &[Values] = value_classes!(Offset, Large, Long, Overflow);
const NONE: (&[DType], &str) = (&[], "");

pub static OPS: &[Op] = &[
    indexing::INDEX_SELECT,
    indexing::GATHER,
    #[cfg(feature = "tensor-scatter")]
    indexing::SCATTER,
    indexing::SCATTER_ADD,
    indexing::INDEX_ADD,
    copies::CAT,
    compare::ARG_SORT_LAST_DIM,
    copies::TO_DTYPE,
    copies::CONTIGUOUS,
    matmul::MATMUL,
    matmul::BROADCAST_MATMUL,
    norms::SOFTMAX_LAST_DIM,
    norms::SOFTMAX,
    norms::LOG_SOFTMAX,
    elementwise::SILU,
    elementwise::SIGMOID,
    norms::RMS_NORM,
    compare::WHERE_COND,
    compare::CMP,
    reductions::SUM_KEEPDIM,
    reductions::MAX_KEEPDIM,
    reductions::ARGMAX_KEEPDIM,
    elementwise::EXP,
    elementwise::LOG,
    elementwise::SQRT,
    elementwise::TANH,
    elementwise::RELU,
    elementwise::GELU,
    elementwise::GELU_ERF,
    elementwise::AFFINE,
    elementwise::POWF,
    elementwise::CLAMP,
    reductions::MEAN_KEEPDIM,
    reductions::MIN_KEEPDIM,
    reductions::ARGMIN_KEEPDIM,
    reductions::CUMSUM,
    norms::LAYER_NORM,
    norms::LAYER_NORM_MODULE,
    norms::RMS_NORM_MODULE,
    rope::ROPE_I,
    rope::ROPE,
    rope::ROPE_THD,
    matmul::LINEAR,
    indexing::EMBEDDING,
    training::NLL,
    training::CROSS_ENTROPY,
    compare::SORT_LAST_DIM,
    training::ADAMW_STEP,
    binary::ADD,
    binary::SUB,
    binary::MUL,
    binary::DIV,
    binary::MAXIMUM,
    binary::MINIMUM,
    binary::POW,
    binary::BROADCAST_ADD,
    binary::BROADCAST_SUB,
    binary::BROADCAST_MUL,
    binary::BROADCAST_DIV,
    binary::BROADCAST_MAXIMUM,
    binary::BROADCAST_MINIMUM,
    binary::BROADCAST_POW,
    binary::DIV_BY_ZERO,
    binary::COMPARE,
    binary::BROADCAST_COMPARE,
    unary::ABS,
    unary::NEG,
    unary::RECIP,
    unary::SQR,
    unary::SIN,
    unary::COS,
    unary::ERF,
    unary::FLOOR,
    unary::CEIL,
    unary::ROUND,
    unary::ROUND_TO,
    unary::SIGN,
    unary::ELU,
    unary::SILU_METHOD,
    unary::SUM,
    unary::MAX,
    unary::MIN,
    unary::MEAN,
    unary::ARGMAX,
    unary::ARGMIN,
    unary::VAR,
    unary::VAR_KEEPDIM,
    unary::LOG_SUM_EXP,
    unary::SUM_ALL,
    unary::MEAN_ALL,
    unary::MAX_ALL,
    unary::MIN_ALL,
    unary::NORM,
    unary::DOT,
    unary::MV,
    conv::CONV1D,
    conv::CONV1D_WITH_ALGO,
    conv::CONV2D_OP,
    conv::CONV2D_WITH_ALGO,
    conv::CONV_TRANSPOSE1D,
    conv::CONV_TRANSPOSE2D,
    pool::AVG_POOL2D,
    pool::AVG_POOL2D_WITH_STRIDE,
    pool::MAX_POOL2D,
    pool::MAX_POOL2D_WITH_STRIDE,
    pool::MAX_POOL2D_NAN,
    pool::UPSAMPLE_NEAREST1D,
    pool::UPSAMPLE_NEAREST2D,
    pool::UPSAMPLE_NEAREST_TO,
    pool::UPSAMPLE_NEAREST_TWICE,
    pool::UPSAMPLE_BILINEAR2D,
    pool::UPSAMPLE_BILINEAR2D_WITH_SCALE,
    pool::PIXEL_SHUFFLE,
    pool::PIXEL_UNSHUFFLE,
    pool::REPLICATION_PAD2D,
    shape::PAD_WITH_ZEROS,
    shape::PAD_WITH_SAME,
    shape::ROLL,
    shape::FLIP,
    shape::REPEAT,
    shape::EXPAND,
    shape::BROADCAST_LEFT,
    shape::STACK,
    shape::CHUNK,
    shape::UNFOLD,
    shape::SLICE_ASSIGN,
    shape::SLICE_SCATTER,
    shape::SLICE_SCATTER0,
    shape::SQUEEZE,
    shape::RESHAPE,
    shape::PERMUTE,
    shape::TRANSPOSE,
    shape::T,
    shape::FLATTEN,
    shape::FLATTEN_ALL,
    shape::FLATTEN_FROM,
    shape::FLATTEN_TO,
    shape::COPY,
    shape::DETACH,
    shape::FORCE_CONTIGUOUS,
    shape::GET,
    shape::GET_ON_DIM,
    shape_fill::ARANGE,
    shape_fill::ARANGE_STEP,
    shape_fill::EYE,
    shape_fill::ONES,
    shape_fill::ZEROS,
    shape_fill::FULL,
    shape_fill::ONES_LIKE,
    shape_fill::ZEROS_LIKE,
    shape_fill::TRIL2,
    shape_fill::TRIU2,
    shape_fill::MESHGRID,
    shape_fill::SLICE_SET,
    shape_fill::SCATTER_SET,
    shape_fill::SCATTER_ADD_SET,
    shape_fill::CONST_SET,
    shape_fill::ZERO_SET,
    shape_fill::ONE_SET,
    nnops::ACT_GELU,
    nnops::ACT_NEW_GELU,
    nnops::ACT_GELU_PYTORCH_TANH,
    nnops::ACT_RELU,
    nnops::ACT_RELU2,
    nnops::ACT_RELU6,
    nnops::ACT_SILU,
    nnops::ACT_SIGMOID,
    nnops::ACT_HARD_SIGMOID,
    nnops::ACT_SWIGLU,
    nnops::ACT_SWISH,
    nnops::ACT_MISH,
    nnops::ACT_HARD_SWISH,
    nnops::ACT_ELU,
    nnops::ACT_LEAKY_RELU,
    nnops::PRELU,
    nnops::HARD_SIGMOID,
    nnops::LEAKY_RELU,
    nnops::MISH,
    nnops::SELU,
    nnops::SWIGLU,
    nnops_losses::MSE,
    nnops_losses::HUBER,
    nnops_losses::BCE_WITH_LOGIT,
    nnops_losses::LAYER_NORM_SLOW,
    nnops_losses::RMS_NORM_SLOW,
    nnops_losses::ROPE_SLOW,
    nnops_losses::ROPE_I_SLOW,
    nnops::IDENTITY,
    nnops::DROPOUT,
    coverage::QMATMUL,
    coverage::QGEMV_FUSED_SHARED_LHS,
    quant::QDEQUANTIZE,
    quant::QQUANTIZE_IMATRIX,
    quant::QMATMUL_FLOAT,
    quant::QMATMUL_VIA_F16,
    quant::QEMBEDDING,
    quant::TENSOR_FROM_HOST,
    quant::TENSOR_EMBEDDING,
    nnmod::CONV1D_MODULE,
    nnmod::CONV2D_MODULE,
    nnmod::CONV_TRANSPOSE1D_MODULE,
    nnmod::CONV_TRANSPOSE2D_MODULE,
    nnmod::GROUP_NORM_MODULE,
    nnmod::DROPOUT_MODULE,
    nnmod::BATCH_NORM_MODULE,
    kvcache::KV_CACHE_APPEND,
    kvcache::CONCAT_KV_CACHE_APPEND,
    kvcache::ROTATING_KV_CACHE_APPEND,
    kvcache::SCATTERED_KV_CACHE_APPEND,
    kvcache::INTERLEAVED_KV_CACHE_APPEND,
];

impl Op {
    /// The dim of the first input that the op reduces: the cell's dim for ops over `DIMS`, the
    /// last (1) for the rest. Every op with value classes takes a 2-D first input whose dims are
    /// knobs 0 and 1 (`value_classes_reach_the_reduced_dim` checks it).
    pub fn reduced_dim(&self, cell: &Cell) -> usize {
        if self.variants == DIMS {
            cell.variant
        } else {
            1
        }
    }
}

pub fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|o| o.name == name)
}
