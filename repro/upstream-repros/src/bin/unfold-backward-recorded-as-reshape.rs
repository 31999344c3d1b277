use candle_core::{Device, Tensor, Var};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let x_var = Var::from_tensor(&Tensor::from_vec(vec![-2f32, -1.0, 0.0, 1.0], (2, 2), dev)?)?;
    let x = x_var.as_tensor().clone();
    let out = x.unfold(0, 2, 2)?;
    let w = Tensor::from_vec(vec![-1f64, -1.0, 1.0, -0.5], out.shape(), &Device::Cpu)?;
    let w = w.to_dtype(out.dtype())?.to_device(dev)?;
    let grads = (out * w)?.sum_all()?.backward()?;
    let no_grad = || candle_core::Error::Msg("no gradient for x".into());
    grads.get(&x_var).cloned().ok_or_else(no_grad)
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
