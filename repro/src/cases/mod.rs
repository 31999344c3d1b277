//! One module per case, named after what it reproduces; each starts with its source, upstream
//! link and where its known status lives.

pub mod broadcast_contiguous_u32;
pub mod scatter_add_u32;

use harness::Case;

/// Every case, in catalog order.
pub fn all() -> [&'static Case; 2] {
    [&scatter_add_u32::CASE, &broadcast_contiguous_u32::CASE]
}

pub fn find(name: &str) -> Option<&'static Case> {
    all().into_iter().find(|c| c.name == name)
}
