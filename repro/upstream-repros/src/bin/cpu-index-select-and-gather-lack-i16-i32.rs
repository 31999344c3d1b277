//! index_add with an i16/i32 index computes, but its backward fails on CPU with 'unsupported dtype F32 for op index-select': CPU index_select has no i16/i32 arm, and its error names the source's dtype, not the index's (cpu)
//!
//! Minimal repro for the root cause
//! `cpu-index-select-and-gather-lack-i16-i32`,
//! built by `cargo run -p repro -- upstream` from the shrunk sweep cell of
//! `index-add-bwd-dst-unimplemented-i32-index` (seed 1169897769390385593);
//! regenerate rather than edit. Depends on candle-core.
//! Run: `cargo run --release --features cuda -- cuda` (or `-- metal`, `-- cpu`). It prints the
//! CPU's result, the device's and the expected answer (a plain-Rust oracle), one line each.

use candle_core::{DType, Device, Tensor, Var};

/// The expected answer (backward dst): central finite differences of the plain-Rust oracle, in f64.
const EXPECTED: &str = "f32 [1, 1] [1.4999999999876221]";

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
    // dst (contiguous): a variable, seen by the op through `itself`.
    let dst_var = Var::from_tensor(
        &Tensor::new(&[-2.0f64], &Device::Cpu)?
            .reshape((1, 1))?
            .to_dtype(DType::F32)?
            .to_device(dev)?,
    )?;
    let dst = dst_var.as_tensor().clone();
    // indexes (contiguous)
    let indexes = Tensor::new(&[0i32], &Device::Cpu)?
        .reshape((1,))?
        .to_device(dev)?;
    // src (contiguous)
    let src = Tensor::new(&[-2.0f64], &Device::Cpu)?
        .reshape((1, 1))?
        .to_dtype(DType::F32)?
        .to_device(dev)?;
    let out = dst.index_add(&indexes, &src, 0)?;
    // loss = sum(out * w); its gradient with respect to `dst` is printed.
    let w = Tensor::new(&[1.5f64], &Device::Cpu)?
        .reshape(out.shape())?
        .to_dtype(out.dtype())?
        .to_device(dev)?;
    let grads = (out * w)?.sum_all()?.backward()?;
    match grads.get(dst_var.as_tensor()) {
        Some(g) => flat(g),
        None => Ok(("no gradient".into(), vec![])),
    }
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
