//! Standalone repro for "scatter_add / scatter backward: wrong or failing gradient for `self`".
//! Depends on candle-core only. Run: `cargo run -- [cpu|cuda|metal]`.
use candle_core::{Device, Tensor, Var};

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cuda") => Device::new_cuda(0),
        Some("metal") => Device::new_metal(0),
        _ => Ok(Device::Cpu),
    }
}

fn main() -> candle_core::Result<()> {
    let dev = device()?;
    // 1. scatter_add with more source rows than `self` rows: the forward works, backward fails.
    let init = Var::from_tensor(&Tensor::zeros((3, 4), candle_core::DType::F32, &dev)?)?;
    let src = Var::from_tensor(&Tensor::ones((6, 4), candle_core::DType::F32, &dev)?)?;
    let idx = Tensor::from_vec(
        (0..24u32).map(|i| (i / 4) % 3).collect::<Vec<_>>(),
        (6, 4),
        &dev,
    )?;
    let out = init.scatter_add(&idx, &src, 0)?;
    println!("forward: {:?}", out.to_vec2::<f32>()?);
    match out.sum_all()?.backward() {
        Ok(g) => println!(
            "backward: d/d init = {:?}",
            g.get(&init).map(|t| t.to_vec2::<f32>())
        ),
        Err(e) => println!(
            "backward: error: {}",
            e.to_string().lines().next().unwrap_or("")
        ),
    }

    // 2. Same shapes: backward runs, but d sum(out) / d init should be all ones.
    let init = Var::from_tensor(&Tensor::zeros((3, 4), candle_core::DType::F32, &dev)?)?;
    let src = Var::from_tensor(&Tensor::ones((3, 4), candle_core::DType::F32, &dev)?)?;
    let idx = Tensor::from_vec(vec![0u32; 12], (3, 4), &dev)?;
    let g = init.scatter_add(&idx, &src, 0)?.sum_all()?.backward()?;
    println!(
        "same shape: d/d init = {:?} (expected all ones)",
        g.get(&init).unwrap().to_vec2::<f32>()?
    );

    // 3. scatter (overwrite): d sum(out) / d init should be 0 where src overwrote.
    let init = Var::from_tensor(&Tensor::zeros((3, 4), candle_core::DType::F32, &dev)?)?;
    let src = Var::from_tensor(&Tensor::ones((1, 4), candle_core::DType::F32, &dev)?)?;
    let idx = Tensor::from_vec(vec![1u32; 4], (1, 4), &dev)?;
    let g = init.scatter(&idx, &src, 0)?.sum_all()?.backward()?;
    println!(
        "scatter: d/d init = {:?} (expected row 1 zero)",
        g.get(&init).unwrap().to_vec2::<f32>()?
    );
    Ok(())
}
