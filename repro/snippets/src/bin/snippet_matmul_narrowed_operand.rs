//! Standalone repro for "matmul rejects an operand narrowed along its last dim on CUDA".
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
    let a = Tensor::arange(0f32, 20., &device)?.reshape((5, 4))?;
    let w = Tensor::arange(0f32, 32., &device)?.reshape((4, 8))?;
    let col = w.narrow(1, 2, 1)?; // shape [4, 1], stride [8, 1]
    println!("col: {:?} stride {:?}", col.dims(), col.stride());
    match a.matmul(&col) {
        Ok(y) => println!("a.matmul(&col) = {:?}", y.flatten_all()?.to_vec1::<f32>()?),
        Err(e) => println!(
            "a.matmul(&col): error: {}",
            e.to_string().lines().next().unwrap_or("")
        ),
    }
    let y = a.matmul(&col.contiguous()?)?;
    println!(
        "a.matmul(&col.contiguous()) = {:?} ({:?})",
        y.flatten_all()?.to_vec1::<f32>()?,
        DType::F32
    );
    Ok(())
}
