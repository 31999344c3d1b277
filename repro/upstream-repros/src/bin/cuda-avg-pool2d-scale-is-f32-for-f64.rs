use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let x = Tensor::from_vec(vec![-2f64, -1.0, 0.0, 1.0, 2.0, -2.0], (1, 1, 2, 3), dev)?;
    x.avg_pool2d((2, 3))
}

fn show(dev: &Device) {
    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: {t}", dev.location()),
        Err(e) => println!("{:?}: error: {e}", dev.location()),
    }
}

fn main() -> candle_core::Result<()> {
    candle_core::display::set_precision(17);
    show(&Device::Cpu);
    show(&Device::new_cuda(0)?);
    Ok(())
}
