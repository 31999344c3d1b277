//! Standalone repro for "index_add along many rows is far slower than index_select of the same data".
//! Depends on candle-core only. Run: `cargo run --release -- [cpu|cuda|metal]`.
use candle_core::{DType, Device, Tensor};
use std::time::Instant;

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cuda") => Device::new_cuda(0),
        Some("metal") => Device::new_metal(0),
        _ => Ok(Device::Cpu),
    }
}

fn median_ms(
    device: &Device,
    f: impl Fn() -> candle_core::Result<Tensor>,
) -> candle_core::Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut ms = Vec::new();
    for _ in 0..20 {
        device.synchronize()?;
        let t0 = Instant::now();
        f()?;
        device.synchronize()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[9] + ms[10]) / 2.0)
}

fn main() -> candle_core::Result<()> {
    let device = device()?;
    let d = 128;
    for n in [1024usize, 16384, 65536] {
        // ids reversed: every destination row receives exactly one source row.
        let ids = Tensor::from_vec((0..n as u32).rev().collect::<Vec<_>>(), n, &device)?;
        let src = Tensor::ones((n, d), DType::F32, &device)?;
        let dst = Tensor::zeros((n, d), DType::F32, &device)?;
        let select = median_ms(&device, || src.index_select(&ids, 0))?;
        let add = median_ms(&device, || dst.index_add(&ids, &src, 0))?;
        println!(
            "N = {n:>6}, D = {d}: index_select {select:.3} ms, index_add {add:.3} ms ({:.1}x)",
            add / select
        );
    }
    Ok(())
}
