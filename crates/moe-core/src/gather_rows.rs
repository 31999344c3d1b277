//! `GatherRows`: the row-gather custom op whose gradient is again a row gather (no `index_add`),
//! used by the `sorted` strategy to move rows in and out of its capacity layout.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CudaStorage, CustomOp2, Layout, MetalStorage, Result, Shape, Tensor,
};

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
