//! Standalone repro for "scatter_add with a u32 index fails with `got: F32`".
//! Depends on candle-core only. Run: `cargo run -- [cpu|cuda|metal]`.
use candle_core::{DType, Device, Tensor};

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cuda") => Device::new_cuda(0),
        Some("metal") => Device::new_metal(0),
        _ => Ok(Device::Cpu),
    }
}

fn main() -> candle_core::Result<()> {
    let device = device()?;
    let (n_tok, n_out, n_embd) = (5usize, 3usize, 4usize);
    // Token t is added into output row t % n_out, on every column.
    let idx_data: Vec<u32> = (0..n_tok * n_embd)
        .map(|i| ((i / n_embd) % n_out) as u32)
        .collect();
    let idx_2d = Tensor::from_vec(idx_data, (n_tok, n_embd), &device)?;
    println!("idx_2d from_vec: {:?} {:?}", idx_2d.dtype(), idx_2d.dims());
    let src = Tensor::ones((n_tok, n_embd), DType::F32, &device)?;
    let result = Tensor::zeros((n_out, n_embd), DType::F32, &device)?;

    // The call as written in the report: (src, idx_2d, 0).
    match result.scatter_add(&src, &idx_2d, 0) {
        Ok(t) => println!(
            "result.scatter_add(&src, &idx_2d, 0): ok {:?} {:?}",
            t.dtype(),
            t.to_vec2::<f32>()?
        ),
        Err(e) => println!(
            "result.scatter_add(&src, &idx_2d, 0): error: {}",
            e.to_string().lines().next().unwrap_or("")
        ),
    }

    // The signature is scatter_add(&self, indexes, source, dim).
    let out = result.scatter_add(&idx_2d, &src, 0)?;
    println!(
        "result.scatter_add(&idx_2d, &src, 0): {:?} {:?}",
        out.dtype(),
        out.to_vec2::<f32>()?
    );

    // The report's other construction: 1-D u32 -> unsqueeze -> broadcast_as -> contiguous.
    let idx_1d: Vec<u32> = (0..n_tok).map(|t| (t % n_out) as u32).collect();
    let idx_1d = Tensor::from_vec(idx_1d, (n_tok,), &device)?;
    let idx_b = idx_1d.unsqueeze(1)?.broadcast_as((n_tok, n_embd))?;
    println!("idx_1d.unsqueeze(1)?.broadcast_as(..): {:?}", idx_b.dtype());
    let idx_b = idx_b.contiguous()?;
    println!(
        "...contiguous(): {:?} {:?}",
        idx_b.dtype(),
        idx_b.to_vec2::<u32>()?
    );
    let out = result.scatter_add(&idx_b, &src, 0)?;
    println!(
        "result.scatter_add(&idx_b, &src, 0): {:?} {:?}",
        out.dtype(),
        out.to_vec2::<f32>()?
    );
    Ok(())
}
