use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let like = Tensor::from_vec(vec![-2f32], (1,), dev)?;
    Tensor::arange_step(16777216.0f32, 16777224.0f32, 3.0f32, like.device())
}

fn show(dev: &Device) {
    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: {t}", dev.location()),
        Err(e) => println!("{:?}: error: {e}", dev.location()),
    }
}

fn main() -> candle_core::Result<()> {
    candle_core::display::set_precision(9);
    show(&Device::Cpu);
    show(&Device::new_cuda(0)?);
    Ok(())
}
