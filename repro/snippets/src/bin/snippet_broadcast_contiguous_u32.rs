//! Standalone repro for "broadcast_as + contiguous turns a u32 tensor into f32".
//! Depends on candle-core only. Run: `cargo run -- [cpu|cuda|metal]`.
use candle_core::{Device, Tensor};

fn device() -> candle_core::Result<Device> {
    match std::env::args().nth(1).as_deref() {
        Some("cuda") => Device::new_cuda(0),
        Some("metal") => Device::new_metal(0),
        _ => Ok(Device::Cpu),
    }
}

fn main() -> candle_core::Result<()> {
    let device = device()?;
    // 2^24 + 1 and its neighbours are not representable in f32: a detour through f32 would show.
    let data: Vec<u32> = (0..4).map(|i| 16_777_217 + 2 * i).collect();
    let idx_1d = Tensor::from_vec(data, (4,), &device)?;
    println!(
        "from_vec:      {:?} {:?}",
        idx_1d.dtype(),
        idx_1d.to_vec1::<u32>()?
    );
    let unsq = idx_1d.unsqueeze(1)?;
    println!("unsqueeze(1):  {:?} {:?}", unsq.dtype(), unsq.dims());
    let bcast = unsq.broadcast_as((4, 3))?;
    println!("broadcast_as:  {:?} {:?}", bcast.dtype(), bcast.dims());
    let idx_2d = bcast.contiguous()?;
    println!(
        "contiguous():  {:?} {:?}",
        idx_2d.dtype(),
        idx_2d.to_vec2::<u32>()?
    );

    // A view with a non-zero offset, then the same chain.
    let narrowed = idx_1d.narrow(0, 1, 2)?;
    let idx_n = narrowed.unsqueeze(0)?.broadcast_as((2, 2))?.contiguous()?;
    println!(
        "narrow(0, 1, 2) -> broadcast -> contiguous: {:?} {:?}",
        idx_n.dtype(),
        idx_n.to_vec2::<u32>()?
    );
    Ok(())
}
