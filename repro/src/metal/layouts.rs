//! The layout tests Metal's paths branch on, from candle 0.11.1. `Layout::is_contiguous` and
//! `is_scalar_like` are candle's own (public); the crate-private ones are transcribed here by
//! hand, each naming its original: they decide which branch (contiguous or strided kernel, a
//! blit or `copy2d`) a call takes, never which dtypes a kernel covers.

use candle_core::{Layout, Shape};

/// A contiguous layout of `dims` at offset 0 (a kernel's output).
pub fn contiguous(dims: &[usize]) -> Layout {
    Layout::contiguous(dims)
}

/// `small` (contiguous) broadcast to `big`, as `broadcast_sub(&max)` sees its right side.
pub fn broadcast(small: &[usize], big: &[usize]) -> Layout {
    Layout::contiguous(small)
        .broadcast_as(big)
        .expect("a reduced shape broadcasts back to its source")
}

/// A scalar (rank 0) broadcast to `dims`: what a `Tensor` op given an `f64` compares with.
pub fn scalar(dims: &[usize]) -> Layout {
    broadcast(&[], dims)
}

/// `Layout::outer_stride_for_dim` (layout.rs): the stride between consecutive blocks of the
/// dims from `dim` on, when those dims are contiguous and the outer dims are contiguous among
/// themselves.
pub fn outer_stride_for_dim(l: &Layout, dim: usize) -> Option<usize> {
    let (dims, strides) = (l.dims(), l.stride());
    let mut expected = 1usize;
    for i in (dim..dims.len()).rev() {
        if strides[i] != expected {
            return None;
        }
        expected *= dims[i];
    }
    if dim == 0 {
        return Some(expected);
    }
    let outer = strides[dim - 1];
    let mut expected_outer = outer;
    for k in (0..dim - 1).rev() {
        expected_outer *= dims[k + 1];
        if strides[k] != expected_outer {
            return None;
        }
    }
    Some(outer)
}

/// `Layout::strided_blocks` (layout.rs), its `UniformBlocks` case: `(block_len, count,
/// src_stride)` when exactly one dim indexes the contiguous trailing blocks.
pub fn uniform_blocks(l: &Layout) -> Option<(usize, usize, usize)> {
    let mut block_len = 1usize;
    let mut contiguous_dims = 0usize;
    for (&stride, &dim) in l.stride().iter().zip(l.dims()).rev() {
        if dim == 1 {
            contiguous_dims += 1;
            continue;
        }
        if stride != block_len {
            break;
        }
        block_len *= dim;
        contiguous_dims += 1;
    }
    (l.dims().len() - contiguous_dims == 1).then(|| (block_len, l.dims()[0], l.stride()[0]))
}

/// `reduce_op` (metal_backend/mod.rs): the contiguous kernel only when the layout is contiguous
/// and stays so with the reduced dims moved last.
pub fn reduce_is_contiguous(l: &Layout, reduced: &[usize]) -> bool {
    let (dims, stride) = (l.dims(), l.stride());
    let mut d = Vec::new();
    let mut s = Vec::new();
    for i in (0..dims.len()).filter(|i| !reduced.contains(i)) {
        d.push(dims[i]);
        s.push(stride[i]);
    }
    for &i in reduced {
        d.push(dims[i]);
        s.push(stride[i]);
    }
    l.is_contiguous() && Shape::from(d).is_contiguous(&s)
}

/// `call_mlx_gemm` (mlx_gemm.rs): whether an operand of rows×cols is read row-major (`false`),
/// transposed (`true`), or not at all (`None`: `MatMulNonContiguous`).
pub fn gemm_transposed(l: &Layout, rows: usize, cols: usize) -> Option<bool> {
    let s = l.stride();
    let (m1, m2) = (s[s.len() - 1], s[s.len() - 2]);
    if (m1 == 1 || cols == 1) && (m2 == cols || rows == 1) {
        Some(false)
    } else if (m1 == rows || cols == 1) && (m2 == 1 || rows == 1) {
        Some(true)
    } else {
        None
    }
}
