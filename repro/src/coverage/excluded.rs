//! Items out of the project's scope, each with the one-line reason: they compute nothing a
//! backend could get wrong against an oracle (custom-op plumbing, I/O, randomness, internal
//! helpers). The page shows them as "excluded (reason)" and counts them apart from "not
//! covered". Tests check that each entry names an item that exists, that no excluded item is
//! covered, and that the list stays short (`MAX_EXCLUDED`).

use super::candle::Item;

/// At most this many entries: an exclusion list that grows is a coverage gap renamed.
pub const MAX_EXCLUDED: usize = 40;

/// (pattern, reason). A pattern is an item key as the page writes it (`apply`, `ops::x`,
/// `QTensor::new`); a trailing `*` matches every key it starts.
pub const EXCLUDED: &[(&str, &str)] = &[
    (
        "apply_op*",
        "custom-op plumbing: runs the caller's own kernel, candle computes nothing",
    ),
    (
        "inplace_op*",
        "custom-op plumbing: runs the caller's own kernel, candle computes nothing",
    ),
    (
        "apply",
        "calls the module's forward: the module is the item (Linear, LayerNorm, …)",
    ),
    (
        "apply_t",
        "calls the module's forward_t: the module is the item (BatchNorm, …)",
    ),
    ("read_np*", "file I/O (npy/npz reading), no backend kernel"),
    ("write_np*", "file I/O (npy/npz writing), no backend kernel"),
    (
        "save_safetensors",
        "file I/O (safetensors writing), no backend kernel",
    ),
    (
        "from_raw_buffer",
        "deserialisation of raw bytes (safetensors loading), no backend kernel",
    ),
    (
        "write_bytes",
        "serialisation of the values to a byte writer, no backend kernel",
    ),
    (
        "rand*",
        "random values: nothing to compare element by element (the distribution is another check)",
    ),
    (
        "empty*",
        "uninitialised values: nothing to compare (the shape is metadata)",
    ),
    (
        "strided_index",
        "internal helper: an iterator over a layout's offsets, no backend kernel",
    ),
    (
        "strided_blocks",
        "internal helper: a layout's contiguous blocks, no backend kernel",
    ),
    (
        "sorted_nodes",
        "autograd internals: the graph's topological order (backward is checked through the ops)",
    ),
    (
        "from_storage",
        "internal constructor from a backend's storage, used by every op",
    ),
    (
        "normalize_axis",
        "index arithmetic on an axis number, no tensor computed",
    ),
    ("is_fortran_contiguous", "metadata accessor: no kernel runs"),
    (
        "QTensor::new",
        "wraps already-quantized bytes (file loading): nothing is computed",
    ),
    (
        "QTensor::indexed_moe_forward",
        "CUDA only: every other storage panics (\"indexed_moe_forward is not implemented in this platform!\")",
    ),
    (
        "QMatMul::indexed_moe_forward",
        "CUDA only: forwards to QTensor::indexed_moe_forward, and panics for float weights",
    ),
    (
        "QTensor::indexed_gemv",
        "aarch64 CPU only (returns None on x86_64 and on every GPU): no path to check on the machines swept",
    ),
    (
        "ops::sdpa",
        "Metal only in candle-nn 0.11.1: Sdpa::cpu_fwd bails \"SDPA has no cpu impl\" and there is no cuda_fwd",
    ),
];

/// The reason an item is excluded, if an entry matches its key.
pub fn excluded(item: &Item) -> Option<&'static str> {
    EXCLUDED
        .iter()
        .find(|(p, _)| matches(p, &item.key))
        .map(|(_, r)| *r)
}

/// Whether a pattern matches a key: equal, or a `prefix*` that the key starts with.
pub fn matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => pattern == key,
    }
}
