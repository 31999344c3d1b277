//! Standalone repro for "per-matmul f16 casts are slower than f32 at width 128".
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

/// 120 chained (T, D) x (D, D) matmuls, as in 12 layers x 10 matmuls.
fn chain(x: &Tensor, ws: &[Tensor], per_matmul_f16: bool) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for w in ws {
        h = if per_matmul_f16 {
            // The pattern under test: cast both operands, multiply, cast back.
            h.to_dtype(DType::F16)?
                .matmul(&w.to_dtype(DType::F16)?)?
                .to_dtype(DType::F32)?
        } else {
            h.matmul(w)?
        };
    }
    Ok(h)
}

fn median_ms(
    device: &Device,
    mut f: impl FnMut() -> candle_core::Result<Tensor>,
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
    let (t, d) = (512, 128);
    let x = Tensor::randn(0f32, 1.0, (t, d), &device)?;
    let ws: Vec<Tensor> = (0..120)
        .map(|_| Tensor::randn(0f32, (1.0 / (d as f64).sqrt()) as f32, (d, d), &device))
        .collect::<Result<_, _>>()?;
    let ws16: Vec<Tensor> = ws
        .iter()
        .map(|w| w.to_dtype(DType::F16))
        .collect::<Result<_, _>>()?;
    let f32_ms = median_ms(&device, || chain(&x, &ws, false))?;
    let cast_ms = median_ms(&device, || chain(&x, &ws, true))?;
    let x16 = x.to_dtype(DType::F16)?;
    let persistent_ms = median_ms(&device, || chain(&x16, &ws16, false))?;
    println!("D = {d}, T = {t}, 120 matmuls, median of 20:");
    println!("  f32                      {f32_ms:.3} ms");
    println!(
        "  per-matmul f16 casts     {cast_ms:.3} ms ({:.2}x f32)",
        cast_ms / f32_ms
    );
    println!(
        "  persistent f16           {persistent_ms:.3} ms ({:.2}x f32)",
        persistent_ms / f32_ms
    );
    Ok(())
}
