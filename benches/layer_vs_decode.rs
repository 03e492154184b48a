//! Benchmarks: to be filled by the performance work.
fn main() {}
