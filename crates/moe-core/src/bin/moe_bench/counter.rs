//! The optional call counter (`--count-launches`): tools/cuda-launch-count's preloaded
//! `launch_count_snapshot`, found with dlsym, and the calls one run makes.

/// The preloaded counter's `launch_count_snapshot`, when there is one.
pub(crate) type Snapshot = unsafe extern "C" fn(*mut u64, usize) -> usize;

#[cfg(unix)]
pub(crate) fn find_counter() -> Option<Snapshot> {
    // SAFETY: dlsym with a NUL-terminated name; the symbol, when present, has this signature
    // (tools/cuda-launch-count/launch_count.c).
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"launch_count_snapshot".as_ptr()) };
    (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, Snapshot>(p) })
}

#[cfg(not(unix))]
pub(crate) fn find_counter() -> Option<Snapshot> {
    None
}

/// Calls made by one run of `f`: kernel launches, GEMM calls, device→host copies, syncs.
pub(crate) fn count_calls(
    counter: Snapshot,
    f: impl FnOnce() -> candle_core::Result<()>,
) -> Option<[u64; 4]> {
    let read = || {
        let mut v = [0u64; 4];
        // SAFETY: the buffer holds the 4 counters the function writes at most.
        unsafe { counter(v.as_mut_ptr(), v.len()) };
        v
    };
    let before = read();
    f().ok()?;
    let after = read();
    Some(std::array::from_fn(|i| after[i] - before[i]))
}
