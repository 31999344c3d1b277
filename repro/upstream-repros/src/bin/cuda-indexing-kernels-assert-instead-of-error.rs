//! [cuda] gather / index_select / index_add / scatter / scatter_add with an out-of-range index (one past the end, or negative i64) abort with a device-side assert that poisons the CUDA context, where the CPU returns an InvalidIndex error
//!
//! Minimal repro for the root cause
//! `cuda-indexing-kernels-assert-instead-of-error`,
//! built by `cargo run -p repro -- upstream` from the shrunk sweep cell of
//! `embedding-fwd-error-mismatch-index-negative` (seed 16459736793418917626);
//! regenerate rather than edit. Depends on candle-core and candle-nn.
//! Run: `cargo run --release --features cuda -- cuda` (or `-- metal`, `-- cpu`). It prints the
//! CPU's result, the device's and the expected answer (a plain-Rust oracle), one line each.

use candle_core::{DType, Device, Tensor};

/// The expected answer (forward): the plain-Rust oracle, in f64, rounded once to the output dtype.
const EXPECTED: &str = "rejects the call: index -1 is out of range for dim 0 of size 2";

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
    // w (contiguous)
    let w = Tensor::new(&[-2.0f64, -1.0f64, 0.0f64, 1.0f64], &Device::Cpu)?
        .reshape((2, 2))?
        .to_dtype(DType::F32)?
        .to_device(dev)?;
    // indexes (contiguous)
    let indexes = Tensor::new(&[-1i64, 1i64], &Device::Cpu)?
        .reshape((2,))?
        .to_device(dev)?;
    let out =
        candle_core::Module::forward(&candle_nn::Embedding::new(w.clone(), w.dim(1)?), &indexes)?;
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
