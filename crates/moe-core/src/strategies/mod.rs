//! The dispatch strategies' forward passes, one file per strategy or family; lib.rs's
//! `strategies!` table names each one's forward and routing methods.

mod dense;
mod host_topk;
mod onehot;
pub(crate) mod sorted;
mod sparse;
