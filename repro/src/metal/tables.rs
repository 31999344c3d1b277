//! Where each of Metal's dispatch `match`es and guards is in candle 0.11.1's sources: the hand
//! part of the derivation, one line each (file, the anchors leading to the item, which match).
//! What the matches say (dtypes, names, errors) is parsed, never typed here.

use super::dispatch::{Guard, Pick, Table};

const MB: &str = "candle-core/src/metal_backend/mod.rs";
const SORT: &str = "candle-core/src/sort.rs";
const NN: &str = "candle-nn/src/ops.rs";
const ROT: &str = "candle-nn/src/rotary_emb.rs";
const GEMM: &str = "candle-metal-kernels/src/kernels/mlx_gemm.rs";

const fn t(file: &'static str, anchors: &'static [&'static str], pick: Pick) -> Table {
    Table {
        file,
        anchors,
        pick,
    }
}

const fn g(file: &'static str, anchors: &'static [&'static str], needle: &'static str) -> Guard {
    Guard {
        file,
        anchors,
        needle,
    }
}

// metal_backend/mod.rs, `impl BackendStorage for MetalStorage`: contiguous match first.
pub const AFFINE_C: Table = t(MB, &["fn affine("], Pick::Nth(0));
pub const AFFINE_S: Table = t(MB, &["fn affine("], Pick::Nth(1));
pub const POWF_C: Table = t(MB, &["fn powf("], Pick::Nth(0));
pub const POWF_S: Table = t(MB, &["fn powf("], Pick::Nth(1));
pub const REDUCE_C: Table = t(MB, &["fn reduce_op("], Pick::Nth(0));
pub const REDUCE_S: Table = t(MB, &["fn reduce_op("], Pick::Nth(1));
pub const CAST_C: Table = t(MB, &["fn to_dtype("], Pick::Nth(0));
pub const CAST_S: Table = t(MB, &["fn to_dtype("], Pick::Nth(1));
pub const UNARY_C: Table = t(MB, &["fn unary_impl<"], Pick::Nth(0));
pub const UNARY_S: Table = t(MB, &["fn unary_impl<"], Pick::Nth(1));
pub const CONST_SET_C: Table = t(MB, &["fn const_set("], Pick::Nth(0));
pub const WHERE: Table = t(MB, &["fn where_cond("], Pick::Nth(0));
pub const GATHER: Table = t(MB, &["fn gather("], Pick::Nth(0));
pub const SCATTER: Table = t(MB, &["fn scatter_set("], Pick::Nth(0));
pub const SCATTER_ADD: Table = t(MB, &["fn scatter_add_set("], Pick::Nth(0));
pub const INDEX_SELECT: Table = t(MB, &["fn index_select("], Pick::Nth(0));
pub const INDEX_ADD: Table = t(MB, &["fn index_add("], Pick::Nth(0));
pub const MATMUL: Table = t(MB, &["fn matmul("], Pick::Nth(0));
pub const COPY2D: Table = t(MB, &["fn copy2d("], Pick::Nth(0));
pub const COPY_STRIDED: Table = t(MB, &["fn copy_strided_src("], Pick::Nth(0));
pub const CMP_NAME: Table = t(MB, &["fn cmp("], Pick::Nth(0));
/// `MetalStorage::binary`: the name suffix by (lhs scalar, rhs scalar, lhs contiguous, rhs
/// contiguous); the name itself is `kernel_name`'s `format!`.
pub const BINARY_SUFFIX: Table = t(
    MB,
    &["pub fn binary("],
    Pick::On("(lhs_is_scalar, rhs_is_scalar, lhs_contiguous, rhs_contiguous)"),
);

// candle-core/src/sort.rs, `impl CustomOp1 for ArgSort`: ascending match first.
pub const ASORT_ASC: Table = t(SORT, &["fn metal_fwd("], Pick::Nth(0));
pub const ASORT_DESC: Table = t(SORT, &["fn metal_fwd("], Pick::Nth(1));

// candle-nn/src/ops.rs and rotary_emb.rs, the custom ops' `metal_fwd`.
pub const SIGMOID_C: Table = t(NN, &["for Sigmoid", "fn metal_fwd("], Pick::Nth(0));
pub const SIGMOID_S: Table = t(NN, &["for Sigmoid", "fn metal_fwd("], Pick::Nth(1));
pub const SOFTMAX_LAST: Table = t(NN, &["for SoftmaxLastDim", "fn metal_fwd("], Pick::Nth(0));
pub const RMSNORM: Table = t(
    NN,
    &["CustomOp2 for RmsNorm", "fn metal_fwd("],
    Pick::Nth(0),
);
pub const LAYERNORM: Table = t(
    NN,
    &["CustomOp3 for LayerNorm", "fn metal_fwd("],
    Pick::Nth(0),
);
pub const ROPE_I: Table = t(ROT, &["for RotaryEmbI ", "fn metal_fwd("], Pick::Nth(0));
pub const ROPE: Table = t(ROT, &["for RotaryEmb ", "fn metal_fwd("], Pick::Nth(0));
pub const ROPE_THD: Table = t(ROT, &["for RotaryEmbThd ", "fn metal_fwd("], Pick::Nth(0));

// candle-metal-kernels: the GEMM name's parts, and `Source` → library constant.
pub const GEMM_DTYPE: Table = t(GEMM, &["pub fn call_mlx_gemm("], Pick::On("dtype"));
pub const GEMV_DTYPE: Table = t(GEMM, &["pub fn call_mlx_gemv("], Pick::On("dtype"));
pub const GEMM_TRANS: Table = t(
    GEMM,
    &["pub fn call_mlx_gemm("],
    Pick::On("(a_trans, b_trans)"),
);
pub const LIBRARY_SOURCE: Table = t(
    "candle-metal-kernels/src/kernel.rs",
    &["fn get_library_source("],
    Pick::Nth(0),
);

// Guards: a precondition checked before (or after) the dtype match; the error it raises.
pub const INDEX_SELECT_IDS: Guard = g(MB, &["fn index_select("], "ids_l.is_contiguous()");
pub const GATHER_IDS: Guard = g(MB, &["fn gather("], "ids_l.is_contiguous()");
pub const SCATTER_LAYOUTS: Guard = g(MB, &["fn scatter_set("], "is_contiguous()");
pub const SCATTER_ADD_LAYOUTS: Guard = g(MB, &["fn scatter_add_set("], "is_contiguous()");
pub const INDEX_ADD_LAYOUTS: Guard = g(MB, &["fn index_add("], "ids_l.is_contiguous()");
pub const SOFTMAX_LAYOUT: Guard = g(
    NN,
    &["for SoftmaxLastDim", "fn metal_fwd("],
    "is_contiguous()",
);
pub const RMSNORM_LAYOUT: Guard = g(
    NN,
    &["CustomOp2 for RmsNorm", "fn metal_fwd("],
    "is_contiguous()",
);
pub const LAYERNORM_LAYOUT: Guard = g(
    NN,
    &["CustomOp3 for LayerNorm", "fn metal_fwd("],
    "is_contiguous()",
);
pub const ARGSORT_LAYOUT: Guard = g(SORT, &["pub fn arg_sort_last_dim("], "is_contiguous()");
pub const SORT_LAYOUT: Guard = g(SORT, &["pub fn sort_last_dim("], "is_contiguous()");
/// `call_mlx_gemm`: neither the row-major nor the transposed reading fits the strides.
pub const GEMM_STRIDES: Guard = g(GEMM, &["pub fn call_mlx_gemm("], "let (lda, a_trans)");

/// rope_i / rope / rope_thd (candle-nn's wrappers, every backend): xs, cos, sin contiguous.
pub fn rope_guards(op: &str) -> [Guard; 3] {
    let anchors: &'static [&'static str] = match op {
        "rope_i" => &["pub fn rope_i("],
        "rope" => &["pub fn rope("],
        _ => &["pub fn rope_thd("],
    };
    [
        g(ROT, anchors, "!xs.is_contiguous()"),
        g(ROT, anchors, "!cos.is_contiguous()"),
        g(ROT, anchors, "!sin.is_contiguous()"),
    ]
}
