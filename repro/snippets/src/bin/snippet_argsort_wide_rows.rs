//! Standalone repro for "arg_sort_last_dim fails or returns wrong indices on wide rows".
//! Depends on candle-core only. Run: `cargo run --release -- [cpu|cuda|metal]`.
use candle_core::{Device, Tensor};

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cuda") => Device::new_cuda(0),
        Some("metal") => Device::new_metal(0),
        _ => Ok(Device::Cpu),
    }
}

fn main() -> candle_core::Result<()> {
    let device = device()?;
    for width in [1024usize, 1025, 2048, 8192, 8193, 32000] {
        // Descending values: the ascending argsort of row [w-1, ..., 1, 0] is [w-1, ..., 0].
        let data: Vec<f32> = (0..width).rev().map(|v| v as f32).collect();
        let t = Tensor::from_vec(data, (1, width), &device)?;
        match t.arg_sort_last_dim(true).and_then(|i| i.to_vec2::<u32>()) {
            Ok(idx) => {
                let wrong = idx[0]
                    .iter()
                    .enumerate()
                    .filter(|&(i, &v)| v as usize != width - 1 - i)
                    .count();
                println!("width {width:>6}: {wrong} wrong indices");
            }
            Err(e) => println!(
                "width {width:>6}: error: {}",
                e.to_string().lines().next().unwrap_or("")
            ),
        }
    }
    Ok(())
}
