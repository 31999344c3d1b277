//! max / min / argmax / argmin drop a NaN unless it is the first element of the row, and CUDA's max / min drop it even then (PyTorch returns NaN and its index) (cpu and cuda)
//!
//! Minimal repro for the root cause
//! `max-min-reductions-drop-nan`,
//! built by `cargo run -p repro -- upstream` from the shrunk sweep cell of
//! `max-keepdim-fwd-non-finite-nan-last` (seed 12359818453200104445);
//! regenerate rather than edit. Depends on candle-core.
//! Run: `cargo run --release --features cuda -- cuda` (or `-- metal`, `-- cpu`). It prints the
//! CPU's result, the device's and the expected answer (a plain-Rust oracle), one line each.

use candle_core::{DType, Device, Tensor};

/// The expected answer (forward): the plain-Rust oracle, in f64, rounded once to the output dtype.
const EXPECTED: &str = "f32 [1, 1] [NaN]";

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cpu") => Ok(Device::Cpu),
        Some("metal") => Device::new_metal(0),
        _ => Device::new_cuda(0),
    }
}

/// dtype, shape and values (read on the CPU as f64).
fn flat(t: &Tensor) -> candle_core::Result<(String, Vec<f64>)> {
    let desc = format!("{} {:?}", t.dtype().as_str(), t.dims());
    let v = t
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    Ok((desc, v))
}

fn run(dev: &Device) -> candle_core::Result<(String, Vec<f64>)> {
    // x (contiguous)
    let x = Tensor::new(&[f64::NAN], &Device::Cpu)?
        .reshape((1, 1))?
        .to_dtype(DType::F32)?
        .to_device(dev)?;
    let out = x.max_keepdim(0)?;
    flat(&out)
}

/// What `run` gave on `dev`, in one line: the result, the error, or a panic.
fn outcome(dev: &Device) -> String {
    // AssertUnwindSafe: on macOS `Device` holds a `MetalDevice`, which is not `RefUnwindSafe`.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(dev))) {
        Ok(Ok((desc, v))) if v.is_empty() && desc == "no gradient" => desc,
        Ok(Ok((desc, v))) => {
            let v: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            format!("{desc} [{}]", v.join(", "))
        }
        // The first line: candle appends a backtrace when RUST_BACKTRACE is set.
        Ok(Err(e)) => format!("error: {}", e.to_string().lines().next().unwrap_or("")),
        Err(_) => "panicked".to_string(),
    }
}

fn main() -> candle_core::Result<()> {
    let dev = device()?;
    println!("cpu:      {}", outcome(&Device::Cpu));
    if !dev.is_cpu() {
        let tag = format!("{}:", if dev.is_cuda() { "cuda" } else { "metal" });
        println!("{tag:<10}{}", outcome(&dev));
    }
    println!("expected: {EXPECTED}");
    Ok(())
}
