//! The `gateway` binary: see the `tower_jwt_plan_gateway` crate docs (`gateway/src/lib.rs`).

/// mimalloc rather than the system allocator: under load, glibc's malloc spent about 15 % of
/// the gateway's CPU time, partly contending on its arena locks (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tower_jwt_plan_gateway::cli::main()
}
