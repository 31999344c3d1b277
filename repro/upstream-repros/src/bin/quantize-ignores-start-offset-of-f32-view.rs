use candle_core::{Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let w = Tensor::from_vec(
        [
            vec![7f32; 32],
            [-2f32, -1.0, 0.0, 1.0, 2.0].repeat(7)[..32].to_vec(),
        ]
        .concat(),
        (2, 32),
        dev,
    )?
    .narrow(0, 1, 1)?;
    candle_core::quantized::QTensor::dequantize(
        &candle_core::quantized::QTensor::quantize_onto(
            &w.to_device(&candle_core::Device::Cpu)?,
            candle_core::quantized::GgmlDType::Q4_0,
            w.device(),
        )?,
        w.device(),
    )
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
