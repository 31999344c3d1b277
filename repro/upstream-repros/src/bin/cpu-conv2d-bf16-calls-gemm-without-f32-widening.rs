use candle_core::{DType, Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let x = Tensor::from_vec(vec![-2f32], (1, 1, 1, 1), &Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_device(dev)?;
    let kernel = Tensor::from_vec(vec![-2f32], (1, 1, 1, 1), &Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_device(dev)?;
    x.conv2d(&kernel, 0, 1, 1, 1)
}

fn show(dev: &Device) {
    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: {t}", dev.location()),
        Err(e) => println!("{:?}: error: {e}", dev.location()),
    }
}

fn main() -> candle_core::Result<()> {
    show(&Device::Cpu);
    if let Ok(dev) = Device::new_cuda(0) {
        show(&dev);
    }
    Ok(())
}
