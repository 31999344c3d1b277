use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let x = Tensor::from_vec(vec![7f32, -2.0], (2, 1, 1, 1), dev)?.narrow(0, 1, 1)?;
    x.upsample_bilinear2d(1, 1, false)
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
    if let Ok(dev) = Device::new_cuda(0) {
        show(&dev);
    }
    Ok(())
}
