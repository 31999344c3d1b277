//! `cargo run -p repro --release --bin router_topk_sync`: see repro/src/perf/router_topk_sync.rs.
repro::perf_main!(router_topk_sync, validate);
