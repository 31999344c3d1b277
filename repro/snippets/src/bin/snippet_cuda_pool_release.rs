//! Standalone repro for "CUDA: the memory pool releases freed memory at every synchronisation".
//! Depends on candle-core only (feature `cuda`). Run: `cargo run --release --features cuda -- cuda`.
use candle_core::{Device, Tensor, Var};
use std::time::Instant;

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cuda") => Device::new_cuda(0),
        _ => Ok(Device::Cpu),
    }
}

/// One training step of a two-layer MLP: forward, backward, SGD, and the loss read back (a
/// synchronisation, as every training loop that logs its loss has).
fn step(x: &Tensor, y: &Tensor, w1: &Var, w2: &Var) -> candle_core::Result<f32> {
    let h = x.matmul(w1.as_tensor())?.relu()?;
    let loss = (h.matmul(w2.as_tensor())? - y)?.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    for w in [w1, w2] {
        let g = grads.get(w.as_tensor()).expect("gradient");
        w.set(&(w.as_tensor() - (g * 1e-4)?)?)?;
    }
    loss.to_scalar::<f32>()
}

fn median_ms(f: &mut impl FnMut() -> candle_core::Result<f32>) -> candle_core::Result<f64> {
    for _ in 0..5 {
        f()?;
    }
    let mut ms = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        f()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[9] + ms[10]) / 2.0)
}

/// Sets the release threshold of the device's default memory pool, which cudarc's
/// `cuMemAllocAsync` allocates from.
#[cfg(feature = "cuda")]
fn set_release_threshold(device: &Device, bytes: u64) -> candle_core::Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    if let Device::Cuda(d) = device {
        let stream = d.cuda_stream();
        let ctx = stream.context();
        let mut v = bytes;
        unsafe {
            let pool = result::device::get_default_mem_pool(ctx.cu_device()).unwrap();
            result::mem_pool::set_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut v as *mut u64).cast(),
            )
            .unwrap();
        }
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn set_release_threshold(_: &Device, _: u64) -> candle_core::Result<()> {
    Ok(())
}

fn main() -> candle_core::Result<()> {
    let device = device()?;
    if !device.is_cuda() {
        println!("the memory pool is CUDA's: run with `cuda`");
        return Ok(());
    }
    let (t, d) = (4096, 512);
    let x = Tensor::randn(0f32, 1.0, (t, d), &device)?;
    let y = Tensor::randn(0f32, 1.0, (t, d), &device)?;
    let w1 = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (d, 4 * d), &device)? * 0.04)?)?;
    let w2 = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (4 * d, d), &device)? * 0.02)?)?;
    let mut train = || step(&x, &y, &w1, &w2);
    let as_opened = median_ms(&mut train)?;
    set_release_threshold(&device, u64::MAX)?;
    let raised = median_ms(&mut train)?;
    println!(
        "training step: {as_opened:.3} ms with the pool as candle opened it, {raised:.3} ms with its release threshold raised ({:.2}x)",
        as_opened / raised
    );
    Ok(())
}
