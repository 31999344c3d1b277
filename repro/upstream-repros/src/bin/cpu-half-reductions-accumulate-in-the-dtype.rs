use candle_core::{DType, Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let inp = Tensor::from_vec(
        (0..1024)
            .map(|i| (i % 16) as f32 / 16.0)
            .collect::<Vec<f32>>(),
        (1, 1024),
        &Device::Cpu,
    )?
    .to_dtype(DType::F16)?
    .to_device(dev)?;
    let target = Tensor::from_vec(vec![0u8], (1,), dev)?;
    candle_nn::loss::cross_entropy(&inp, &target)
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
