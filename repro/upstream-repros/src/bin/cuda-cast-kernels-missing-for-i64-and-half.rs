//! [cuda] to_dtype between i64 and f16/bf16 fails with DriverError(CUDA_ERROR_NOT_FOUND, 'named symbol not found'): cast_i64_f16, cast_i64_bf16, cast_f16_i64 and cast_bf16_i64 do not exist
//!
//! Minimal repro for the root cause
//! `cuda-cast-kernels-missing-for-i64-and-half`,
//! built by `cargo run -p repro -- upstream` from the shrunk sweep cell of
//! `to-dtype-fwd-unimplemented` (seed 3489429696044421542);
//! regenerate rather than edit. Depends on candle-core.
//! Run: `cargo run --release --features cuda -- cuda` (or `-- metal`, `-- cpu`). It prints the
//! CPU's result, the device's and the expected answer (a plain-Rust oracle), one line each.

use candle_core::{DType, Device, Tensor};

/// The expected answer (forward): the plain-Rust oracle, in f64, rounded once to the output dtype.
const EXPECTED: &str = "f16 [1, 1] [0]";

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
    let x = Tensor::new(&[0i64], &Device::Cpu)?
        .reshape((1, 1))?
        .to_device(dev)?;
    let out = x.to_dtype(DType::F16)?;
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
