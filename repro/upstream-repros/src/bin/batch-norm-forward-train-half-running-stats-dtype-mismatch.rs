use candle_core::{DType, Device, Tensor};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let x = Tensor::from_vec(vec![-2f32, -1.0], (1, 1, 2), &Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_device(dev)?;
    let weight = Tensor::from_vec(vec![-2f32], (1,), &Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_device(dev)?;
    let bias = Tensor::from_vec(vec![-2f32], (1,), &Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_device(dev)?;
    let running_mean = Tensor::from_vec(vec![-2f32], (1,), &Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_device(dev)?;
    let running_var = Tensor::from_vec(vec![2.5f32], (1,), &Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_device(dev)?;
    Ok({
        let (w, b) = (weight.clone(), bias.clone());
        let bn = candle_nn::BatchNorm::new(1, running_mean, running_var, w, b, 1e-5)?;
        bn.forward_train(&x)?
    })
}

fn show(dev: &Device) {
    match run(dev).and_then(|t| t.to_device(&Device::Cpu)) {
        Ok(t) => println!("{:?}: {t}", dev.location()),
        Err(e) => println!("{:?}: error: {e}", dev.location()),
    }
}

fn main() -> candle_core::Result<()> {
    show(&Device::Cpu);
    show(&Device::new_cuda(0)?);
    Ok(())
}
