use candle_core::{Device, Tensor, Var};

fn run(dev: &Device) -> candle_core::Result<Tensor> {
    let dst_var = Var::from_tensor(&Tensor::from_vec(vec![-2f32], (1, 1), dev)?)?;
    let dst = dst_var.as_tensor().clone();
    let indexes = Tensor::from_vec(vec![0i32], (1,), dev)?;
    let src = Tensor::from_vec(vec![-2f32], (1, 1), dev)?;
    let out = dst.index_add(&indexes, &src, 0)?;
    let w = Tensor::from_vec(vec![1.5f64], out.shape(), &Device::Cpu)?;
    let w = w.to_dtype(out.dtype())?.to_device(dev)?;
    let grads = (out * w)?.sum_all()?.backward()?;
    let no_grad = || candle_core::Error::Msg("no gradient for dst".into());
    grads.get(&dst_var).cloned().ok_or_else(no_grad)
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
    Ok(())
}
