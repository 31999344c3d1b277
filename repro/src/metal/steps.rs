//! The requests a call path makes of Metal's dispatch, and what each finds. A route
//! (`routes.rs`) lists them in the order candle issues them; `resolve` answers each from the
//! parsed tables, and the first that finds no kernel decides the call's outcome.

use super::dispatch::{Dispatch, Found, Guard, Table, Value};
use super::layouts::{gemm_transposed, reduce_is_contiguous, uniform_blocks};
use super::rust_src::Key;
use super::tables::*;
use candle_core::{DType, Layout};

/// A binary kernel's op: a `BinaryOpT` (by struct name, `Mul`) or a comparison (`CmpOp::Ge`).
#[derive(Clone, Debug)]
pub enum BinOp {
    Op(&'static str),
    Cmp(&'static str),
}

#[derive(Clone, Debug)]
pub enum Step {
    /// A table's kernel for a key.
    Kernel(Table, Vec<Key>),
    /// A precondition: raises its error unless it holds.
    Guard(Guard, bool),
    /// `Tensor::<method>()` of a `UnaryOpT`, on a contiguous layout or not.
    Unary(&'static str, DType, bool),
    /// `MetalStorage::binary` on two layouts.
    Binary(BinOp, DType, Layout, Layout),
    /// `reduce_op` (`Sum`, `Max`, `ArgMin`, …) over the given dims of a layout.
    Reduce(&'static str, DType, Layout, Vec<usize>),
    /// `copy_strided_src` of a layout into a fresh buffer of the same dtype.
    Copy(DType, Layout),
    /// `copy2d(d1, d2, src_s, dst_s)`.
    Copy2d(DType, [usize; 4]),
    /// `matmul` of (b, m, n, k) on the two operands' layouts (mlx GEMM).
    Gemm(DType, Layout, Layout, [usize; 4]),
    /// Something the route cannot derive.
    Unknown(String),
}

/// `t.to_dtype(to)`: nothing when the dtypes agree (`Tensor::to_dtype` returns a clone).
pub fn cast(from: DType, to: DType, l: &Layout) -> Vec<Step> {
    if from == to {
        return Vec::new();
    }
    let table = if l.is_contiguous() { CAST_C } else { CAST_S };
    vec![Step::Kernel(table, vec![Key::dtype(from), Key::dtype(to)])]
}

/// A contiguous/strided pair of tables picked by the layout, keyed by the dtype.
pub fn by_layout(c: Table, s: Table, dtype: DType, l: &Layout) -> Step {
    Step::Kernel(
        if l.is_contiguous() { c } else { s },
        vec![Key::dtype(dtype)],
    )
}

pub fn affine(dtype: DType, l: &Layout) -> Step {
    by_layout(AFFINE_C, AFFINE_S, dtype, l)
}

/// What a step finds: one or more kernels (none for a blit or a view), or the first failure.
pub fn resolve(d: &Dispatch, step: &Step) -> Vec<Found> {
    match step {
        Step::Kernel(t, key) => vec![d.kernel(t, key)],
        Step::Guard(_, true) => Vec::new(),
        Step::Guard(g, false) => vec![d.guard(g)],
        Step::Unary(method, dtype, contiguous) => vec![unary(d, method, *dtype, *contiguous)],
        Step::Binary(op, dtype, lhs, rhs) => vec![binary(d, op, *dtype, lhs, rhs)],
        Step::Reduce(op, dtype, l, dims) => {
            let t = if reduce_is_contiguous(l, dims) {
                REDUCE_C
            } else {
                REDUCE_S
            };
            vec![d.kernel(&t, &[Key::Word(op.to_string()), Key::dtype(*dtype)])]
        }
        Step::Copy(dtype, l) => copy(d, *dtype, l),
        Step::Copy2d(dtype, [d1, d2, src_s, dst_s]) => {
            if (src_s == d2 && dst_s == d2) || d1 * d2 == 0 {
                Vec::new()
            } else {
                vec![d.kernel(&COPY2D, &[Key::dtype(*dtype)])]
            }
        }
        Step::Gemm(dtype, lhs, rhs, bmnk) => gemm(d, *dtype, lhs, rhs, *bmnk),
        Step::Unknown(why) => vec![Found::Unknown(why.clone())],
    }
}

fn unary(d: &Dispatch, method: &str, dtype: DType, contiguous: bool) -> Found {
    let kernel = match d.unary_kernel(method) {
        Ok(k) => k,
        Err(e) => return Found::Unknown(e),
    };
    let table = if contiguous { UNARY_C } else { UNARY_S };
    d.kernel(&table, &[Key::Str(kernel), Key::dtype(dtype)])
}

/// `MetalStorage::binary`: the op's kernel prefix, the suffix its match picks by the operands'
/// layouts, the name its `kernel_name` formats, checked against the library `call_binary_*`
/// loads.
fn binary(d: &Dispatch, op: &BinOp, dtype: DType, lhs: &Layout, rhs: &Layout) -> Found {
    let inner = || -> Result<Found, String> {
        let prefix = match op {
            BinOp::Op(s) => d.binary_kernel(s)?,
            BinOp::Cmp(c) => match d.value(&CMP_NAME, &[Key::Word(c.to_string())])? {
                Value::Name(n) => n,
                v => return Err(format!("CmpOp::{c} gives {v:?}")),
            },
        };
        let flag = |b: bool| Key::Word(b.to_string());
        let key = [
            flag(lhs.is_scalar_like()),
            flag(rhs.is_scalar_like()),
            flag(lhs.is_contiguous()),
            flag(rhs.is_contiguous()),
        ];
        let suffix = match d.value(&BINARY_SUFFIX, &key)? {
            Value::Name(s) => s,
            // `contiguous_kernel.clone()`: the name built with the empty suffix.
            Value::Path(p) if p.starts_with("contiguous_kernel") => String::new(),
            v => return Err(format!("binary suffix {v:?}")),
        };
        let name = d.format_name(
            &BINARY_SUFFIX,
            "fn kernel_name(",
            &[&prefix, dtype.as_str(), &suffix],
        )?;
        Ok(d.check(&name, &d.library_of("call_binary_contiguous")?))
    };
    inner().unwrap_or_else(Found::Unknown)
}

/// `copy_strided_src` into a fresh buffer of the same dtype: a blit when contiguous, `copy2d`
/// for uniform blocks with a unit inner stride, the strided copy kernel otherwise.
fn copy(d: &Dispatch, dtype: DType, l: &Layout) -> Vec<Found> {
    if l.is_contiguous() || l.shape().elem_count() == 0 {
        return Vec::new();
    }
    let s = l.stride();
    if s.len() == 1 || s[s.len() - 1] == 1 {
        if let Some((block_len, count, src_stride)) = uniform_blocks(l) {
            let step = Step::Copy2d(dtype, [count, block_len, src_stride, block_len]);
            return resolve(d, &step);
        }
    }
    vec![d.kernel(&COPY_STRIDED, &[Key::dtype(dtype)])]
}

/// `matmul`: the dtype's `GemmDType` (or the refusal), the operands' transposition (or
/// `MatMulNonContiguous`), then the GEMM family `gemm_{trans}_{dt}_{dt}_*` (the tile is chosen
/// per device at run time) checked against mlx_gemm.metal.
fn gemm(
    d: &Dispatch,
    dtype: DType,
    lhs: &Layout,
    rhs: &Layout,
    [_b, m, n, k]: [usize; 4],
) -> Vec<Found> {
    let inner = || -> Result<Found, String> {
        let gemm_dtype = match d.value(&MATMUL, &[Key::dtype(dtype)])? {
            Value::Raise(e) => return Ok(Found::Refuses(e)),
            Value::Path(p) => p.rsplit("::").next().unwrap_or_default().to_string(),
            Value::Name(n) => return Err(format!("matmul dtype gives {n}")),
        };
        let (Some(a_trans), Some(b_trans)) =
            (gemm_transposed(lhs, m, k), gemm_transposed(rhs, k, n))
        else {
            return Ok(d.guard(&GEMM_STRIDES));
        };
        if m == 1 || n == 1 {
            return gemv(d, &gemm_dtype, n != 1 && !b_trans || n == 1 && a_trans);
        }
        let dt = match d.value(&GEMM_DTYPE, &[Key::Word(gemm_dtype)])? {
            Value::Name(s) => s,
            v => return Err(format!("GEMM dtype string {v:?}")),
        };
        let key = [
            Key::Word(a_trans.to_string()),
            Key::Word(b_trans.to_string()),
        ];
        let trans = match d.value(&GEMM_TRANS, &key)? {
            Value::Name(s) => s,
            v => return Err(format!("GEMM transposition {v:?}")),
        };
        let full = d.format_name(
            &GEMM_DTYPE,
            "let trans_str",
            &[&trans, &dt, &dt, "*", "*", "*", "*", "*"],
        )?;
        let family = format!("{}*", &full[..full.find('*').unwrap_or(full.len())]);
        Ok(d.check(&family, &d.library_of("call_mlx_gemm")?))
    };
    vec![inner().unwrap_or_else(Found::Unknown)]
}

/// `call_mlx_gemv` (m or n is 1): `gemv` or `gemv_t` (the literals of its `kernel_prefix`, by
/// whether the matrix operand is read transposed), the dtype's string, the family's prefix.
fn gemv(d: &Dispatch, gemm_dtype: &str, transpose_mat: bool) -> Result<Found, String> {
    let dt = match d.value(&GEMV_DTYPE, &[Key::Word(gemm_dtype.to_string())])? {
        Value::Name(s) => s,
        v => return Err(format!("GEMV dtype string {v:?}")),
    };
    let prefixes = d.literals_after(&GEMV_DTYPE, "let kernel_prefix")?;
    let [t, plain, ..] = prefixes.as_slice() else {
        return Err("kernel_prefix is not `if … { a } else { b }`".into());
    };
    let prefix = if transpose_mat { t } else { plain };
    let full = d.format_name(
        &GEMV_DTYPE,
        "let kernel_prefix",
        &[prefix, &dt, "*", "*", "*", "*", "*", "*"],
    )?;
    let family = format!("{}*", &full[..full.find('*').unwrap_or(full.len())]);
    Ok(d.check(&family, &d.library_of("call_mlx_gemv")?))
}
