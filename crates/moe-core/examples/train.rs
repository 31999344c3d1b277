//! Trains a small MoE block to imitate a fixed random "teacher" MoE block on generated inputs (no
//! downloads), showing the loss falling and ms/iter.
//!
//!     cargo run -p moe-core --release --example train -- --device cuda --dispatch dense

use anyhow::Result;
use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;
use moe_core::{Dispatch, MoeBlock, MoeConfig};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// auto, cpu, cuda[:N] or metal[:N].
    #[arg(long, env = harness::DEVICE_ENV, default_value = "auto")]
    device: String,
    /// host-topk, gather, scatter-add, dense, onehot-mm, sorted, or auto (time one training step of
    /// every router-training strategy here and use the fastest).
    #[arg(long, default_value = "dense")]
    dispatch: String,
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    steps: u64,
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    tokens: u64,
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    dim: u64,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=1024))]
    experts: u64,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    k: u64,
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    };
    // `auto` is resolved once the block and the device exist.
    let dispatch: Option<Dispatch> = match args.dispatch.as_str() {
        "auto" => None,
        other => match other.parse() {
            Ok(d) => Some(d),
            Err(e) => return fail(format!("{e}, or auto")),
        },
    };
    let spec: harness::DeviceSpec = match args.device.parse() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let device = match harness::device::open(spec) {
        Ok(d) => d,
        Err(e) => return fail(e.to_string()),
    };
    // candle 0.11.1 leaves the CUDA pool releasing freed memory at every sync (the loss read).
    match harness::cuda_pool::keep_freed_memory(&device) {
        Ok(Some(done)) => eprintln!("{done}"),
        Ok(None) => {}
        Err(e) => return fail(format!("{e:#}")),
    }
    let config = MoeConfig {
        d: args.dim as usize,
        e: args.experts as usize,
        k: args.k as usize,
        f: 4 * args.dim as usize,
        dtype: DType::F32,
    };
    if let Err(e) = config.validate() {
        return fail(e);
    }
    match train(&args, dispatch, config, &device) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn train(
    args: &Args,
    dispatch: Option<Dispatch>,
    config: MoeConfig,
    device: &candle_core::Device,
) -> Result<()> {
    let teacher = MoeBlock::new(config, device)?;
    let student = MoeBlock::new(config, device)?;
    let t = args.tokens as usize;
    let dispatch = match dispatch {
        Some(d) => d,
        None => {
            let sample = Tensor::randn(0f32, 1.0, (t, config.d), device)?;
            let choice = student.auto_dispatch(&sample, 5)?;
            println!("{choice}");
            choice.dispatch
        }
    };
    let mut opt = AdamW::new(
        student.vars(),
        ParamsAdamW {
            lr: args.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let bar = indicatif::ProgressBar::new(args.steps);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} {msg}",
    )?);
    let mut first = None;
    let mut last = 0f32;
    let mut times = Vec::new();
    for step in 0..args.steps {
        let x = Tensor::randn(0f32, 1.0, (t, config.d), device)?;
        let target = teacher.forward(&x, Dispatch::Dense)?.detach();
        let t0 = Instant::now();
        let pred = student.forward(&x, dispatch)?;
        let loss = (pred - target)?.sqr()?.mean_all()?;
        let grads = loss.backward().map_err(|e| {
            anyhow::anyhow!("backward failed with dispatch {dispatch}: {} (see `cargo run -p repro --bin scatter_add_backward`)", e.to_string().lines().next().unwrap_or(""))
        })?;
        opt.step(&grads)?;
        let l = loss.to_scalar::<f32>()?; // also synchronises the step
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        first.get_or_insert(l);
        last = l;
        bar.set_message(format!("loss {l:.5}"));
        bar.inc(1);
        if !bar.is_hidden() {
            continue;
        }
        if step % 50 == 0 {
            eprintln!("step {step:>5}  loss {l:.5}");
        }
    }
    bar.finish_and_clear();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "dispatch {dispatch} on {}: loss {:.5} → {last:.5} in {} steps; median {median:.2} ms/iter (T = {t}, D = {}, E = {}, K = {})",
        harness::device::location(device),
        first.unwrap_or(0.0),
        args.steps,
        config.d,
        config.e,
        config.k
    );
    Ok(())
}
