//! The CUDA device's default memory pool, which candle's CUDA backend allocates from.
//!
//! cudarc (0.19, candle 0.11.1's) allocates every buffer with `cuMemAllocAsync`, which takes
//! memory from the device's default pool. That pool's release threshold is 0 unless someone
//! raises it, so at every synchronisation the driver hands the pool's freed memory back to the
//! OS and the next allocations map it again. Raising the threshold keeps freed memory in the
//! pool for reuse (what PyTorch's caching allocator does by design).
//!
//! Everything here is a no-op answering `None` on a device that is not CUDA, and in a build
//! without the `cuda` feature.

use candle_core::Device;

/// The release threshold that keeps every freed byte in the pool.
pub const KEEP_ALL: u64 = u64::MAX;

/// The environment variable that opts out of [`keep_freed_memory`]: `1` leaves the pool as
/// candle opened it (the driver's default, release threshold 0).
pub const OPT_OUT_ENV: &str = "CUDA_POOL_RELEASE_ON_SYNC";

/// The default pool's state, read from the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolState {
    /// Bytes of freed memory the pool keeps over a synchronisation.
    pub release_threshold: u64,
    /// Bytes the pool holds from the driver now (in use or kept for reuse).
    pub reserved: u64,
}

/// The default pool's release threshold and reserved bytes, on a CUDA device.
pub fn state(device: &Device) -> anyhow::Result<Option<PoolState>> {
    imp::state(device)
}

/// Sets the default pool's release threshold (bytes); `None` on a device that is not CUDA.
pub fn set_release_threshold(device: &Device, bytes: u64) -> anyhow::Result<Option<()>> {
    imp::set_release_threshold(device, bytes)
}

/// What moe-core, the benches and the training examples call once per device after opening
/// it: raises the release threshold to [`KEEP_ALL`] unless `CUDA_POOL_RELEASE_ON_SYNC=1` is
/// set. Returns what was done, for the program to print.
pub fn keep_freed_memory(device: &Device) -> anyhow::Result<Option<String>> {
    if std::env::var(OPT_OUT_ENV).is_ok_and(|v| v == "1") {
        return Ok(state(device)?.map(|s| {
            format!(
                "CUDA memory pool left as opened (release threshold {} bytes; {OPT_OUT_ENV}=1)",
                s.release_threshold
            )
        }));
    }
    Ok(set_release_threshold(device, KEEP_ALL)?.map(|()| {
        format!(
            "CUDA memory pool keeps freed memory over synchronisations (release threshold raised to u64::MAX; {OPT_OUT_ENV}=1 opts out)"
        )
    }))
}

#[cfg(feature = "cuda")]
mod imp {
    use super::PoolState;
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    use candle_core::Device;

    fn default_pool(device: &Device) -> anyhow::Result<Option<sys::CUmemoryPool>> {
        let Device::Cuda(d) = device else {
            return Ok(None);
        };
        let stream = d.cuda_stream();
        let ctx = stream.context();
        ctx.bind_to_thread()?;
        // SAFETY: the device handle comes from the live context candle opened.
        let pool = unsafe { result::device::get_default_mem_pool(ctx.cu_device()) }?;
        Ok(Some(pool))
    }

    fn get(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> anyhow::Result<u64> {
        let mut v: u64 = 0;
        // SAFETY: both attributes read here are cuuint64_t, as the driver API documents.
        unsafe { result::mem_pool::get_attribute(pool, attr, (&mut v as *mut u64).cast()) }?;
        Ok(v)
    }

    pub fn state(device: &Device) -> anyhow::Result<Option<PoolState>> {
        let Some(pool) = default_pool(device)? else {
            return Ok(None);
        };
        device.synchronize()?;
        Ok(Some(PoolState {
            release_threshold: get(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            )?,
            reserved: get(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
            )?,
        }))
    }

    pub fn set_release_threshold(device: &Device, bytes: u64) -> anyhow::Result<Option<()>> {
        let Some(pool) = default_pool(device)? else {
            return Ok(None);
        };
        let mut v = bytes;
        // SAFETY: CU_MEMPOOL_ATTR_RELEASE_THRESHOLD takes a cuuint64_t.
        unsafe {
            result::mem_pool::set_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut v as *mut u64).cast(),
            )
        }?;
        if bytes == 0 {
            // Hand back what the pool kept, so the next measurement starts as a fresh process.
            device.synchronize()?;
            // SAFETY: the pool is the device's live default pool.
            unsafe { result::mem_pool::trim_to(pool, 0) }?;
        }
        Ok(Some(()))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::PoolState;
    use candle_core::Device;

    pub fn state(_: &Device) -> anyhow::Result<Option<PoolState>> {
        Ok(None)
    }

    pub fn set_release_threshold(_: &Device, _: u64) -> anyhow::Result<Option<()>> {
        Ok(None)
    }
}
