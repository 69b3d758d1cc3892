//! Shared pieces of the `pann` and `pann-party` binaries: the roles wired to
//! TLS (or TCP) channels, input loading, and reports.

#![deny(missing_docs)]

pub mod alloc;
pub mod bench;
pub mod bench_report;
pub mod import;
pub mod input;
pub mod launch;
pub mod metrics;
pub mod netem;
pub mod party;
pub mod precision;
pub mod report;
pub mod service;
mod template;
