//! One module per case, named after what it reproduces; each starts with its source, upstream
//! link and where its known status lives.

pub mod broadcast_contiguous_u32;
pub mod matmul_narrowed_operand;
pub mod scatter_add_backward;
pub mod scatter_add_u32;
pub mod selftest;

use harness::Case;
use std::sync::LazyLock;

static SELFTESTS: LazyLock<Vec<Case>> = LazyLock::new(selftest::cases);

/// Every real case, in catalog order.
pub fn all() -> Vec<&'static Case> {
    vec![
        &scatter_add_u32::CASE,
        &broadcast_contiguous_u32::CASE,
        &scatter_add_backward::CASE,
        &matmul_narrowed_operand::CASE,
    ]
}

/// The cases a suite run may name: the real ones, plus the test-only ones when
/// `CANDLE_REPRO_SELFTEST` is set.
pub fn available() -> Vec<&'static Case> {
    let mut cases = all();
    if std::env::var_os(selftest::ENV).is_some() {
        cases.extend(SELFTESTS.iter());
    }
    cases
}

pub fn find(name: &str) -> Option<&'static Case> {
    available().into_iter().find(|c| c.name == name)
}
