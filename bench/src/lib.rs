//! kovs benchmarks: shared workloads for `cargo bench` and the `kovs-bench` comparisons.

pub mod agent_bench;
pub mod alloc_count;
pub mod cni_bench;
pub mod compile_bench;
pub mod encode_bench;
pub mod install_bench;
pub mod shapes;
pub mod synth;
