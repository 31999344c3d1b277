use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let a = Tensor::from_vec(vec![-2f32, -1.0, 0.0, 1.0], (2, 2, 1), dev)?.t()?;
    let b = Tensor::from_vec(vec![-2f32, -1.0], (1, 2, 1), dev)?.broadcast_as((2, 2, 1))?;
    a.matmul(&b)
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
