//! Standalone repro for "a host round-trip per layer for MoE router top-K stalls the GPU".
//! Depends on candle-core only. Run: `cargo run --release -- [cpu|cuda|metal]`.
use candle_core::{DType, Device, Tensor, D};
use std::time::Instant;

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cuda") => Device::new_cuda(0),
        Some("metal") => Device::new_metal(0),
        _ => Ok(Device::Cpu),
    }
}

fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    let e = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// 12 layers: router logits, softmax, top-K gates, x += gates · W_e.
fn forward(
    x: &Tensor,
    layers: &[(Tensor, Tensor)],
    k: usize,
    on_host: bool,
) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for (router, experts) in layers {
        let probs = softmax(&x.matmul(router)?)?;
        let (t, e) = probs.dims2()?;
        let gates = if on_host {
            // One device -> host copy (and so one full sync) per layer.
            let p = probs.to_vec2::<f32>()?;
            let mut g = vec![0f32; t * e];
            for (r, row) in p.iter().enumerate() {
                let mut idx: Vec<usize> = (0..e).collect();
                idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                let sum: f32 = idx[..k].iter().map(|&i| row[i]).sum();
                for &i in &idx[..k] {
                    g[r * e + i] = row[i] / sum;
                }
            }
            Tensor::from_vec(g, (t, e), x.device())?
        } else {
            let idx = probs
                .arg_sort_last_dim(false)?
                .narrow(1, 0, k)?
                .contiguous()?;
            let top = probs.gather(&idx, 1)?;
            let top = top.broadcast_div(&top.sum_keepdim(1)?)?;
            let ids = Tensor::arange(0u32, e as u32, x.device())?.reshape((1, 1, e))?;
            let one_hot = idx.unsqueeze(2)?.broadcast_eq(&ids)?.to_dtype(DType::F32)?;
            one_hot.broadcast_mul(&top.unsqueeze(2)?)?.sum(1)?
        };
        x = (x + gates.matmul(experts)?)?;
    }
    Ok(x)
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
    let (t, d, e, k) = (2048, 128, 8, 2);
    let x = Tensor::randn(0f32, 1.0, (t, d), &device)?;
    let layers: Vec<(Tensor, Tensor)> = (0..12)
        .map(|_| {
            Ok((
                Tensor::randn(0f32, 0.1, (d, e), &device)?,
                Tensor::randn(0f32, 0.1, (e, d), &device)?,
            ))
        })
        .collect::<candle_core::Result<_>>()?;
    let host = median_ms(&device, || forward(&x, &layers, k, true))?;
    let dev = median_ms(&device, || forward(&x, &layers, k, false))?;
    println!("T = {t}, D = {d}, E = {e}, K = {k}, 12 layers, median of 20:");
    println!("  host top-K (12 syncs)   {host:.3} ms");
    println!(
        "  device top-K (0 syncs)  {dev:.3} ms ({:.2}x host)",
        dev / host
    );
    Ok(())
}
