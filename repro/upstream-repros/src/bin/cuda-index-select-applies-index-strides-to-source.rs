//! [cuda] index_select with a non-contiguous (e.g. broadcast) index returns the source's first element for every output, or aborts with a device-side assert: the index is read as contiguous and its strides are applied to the source offset
//!
//! Minimal repro for the root cause
//! `cuda-index-select-applies-index-strides-to-source`,
//! built by `cargo run -p repro -- upstream` from the shrunk sweep cell of
//! `index-select-fwd-wrong-result-indexes-broadcast` (seed 1573326113843143378);
//! regenerate rather than edit. Depends on candle-core.
//! Run: `cargo run --release --features cuda -- cuda` (or `-- metal`, `-- cpu`). It prints the
//! CPU's result, the device's and the expected answer (a plain-Rust oracle), one line each.

use candle_core::{DType, Device, Tensor};

/// The expected answer (forward): the plain-Rust oracle, in f64, rounded once to the output dtype.
const EXPECTED: &str = "f32 [3, 5] [-0.04098035395145416, 1.9590551853179932, -1.631731390953064, 1.9229384660720825, -1.1002252101898193, -0.04098035395145416, 1.9590551853179932, -1.631731390953064, 1.9229384660720825, -1.1002252101898193, -0.04098035395145416, 1.9590551853179932, -1.631731390953064, 1.9229384660720825, -1.1002252101898193]";

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
    // src (contiguous)
    let src = Tensor::new(
        &[
            0.27904725074768066f64,
            0.2520036995410919f64,
            1.5717813968658447f64,
            1.2461433410644531f64,
            -0.05979045480489731f64,
            0.7014885544776917f64,
            0.9244585633277893f64,
            0.8962493538856506f64,
            0.6912916302680969f64,
            -0.4547939598560333f64,
            -0.04098035395145416f64,
            1.9590551853179932f64,
            -1.631731390953064f64,
            1.9229384660720825f64,
            -1.1002252101898193f64,
        ],
        &Device::Cpu,
    )?
    .reshape((3, 5))?
    .to_dtype(DType::F32)?
    .to_device(dev)?;
    // indexes (broadcast)
    let indexes = Tensor::new(&[2u8], &Device::Cpu)?
        .reshape((1,))?
        .to_device(dev)?
        .broadcast_as((3,))?;
    let out = src.index_select(&indexes, 0)?;
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
