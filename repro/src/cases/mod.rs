//! One module per case, named after what it reproduces; each starts with its source, upstream
//! link and where its known status lives.

pub mod selftest;

use harness::Case;
use std::sync::LazyLock;

/// `cases!(a, b)`: `pub mod a; pub mod b;` and `all()` = `[&a::CASE, &b::CASE]`, so a new case
/// is one line here (and its file, its snippet and a one-line bin).
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        $(pub mod $case;)*

        /// Every real case, in catalog order.
        pub fn all() -> Vec<&'static Case> {
            vec![$(&$case::CASE),*]
        }
    };
}

cases!(
    scatter_add_u32,
    broadcast_contiguous_u32,
    scatter_add_backward,
    matmul_narrowed_operand,
);

static SELFTESTS: LazyLock<Vec<Case>> = LazyLock::new(selftest::cases);

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
