//! The `gateway` binary: see the `tower_jwt_plan_gateway` crate docs (`gateway/src/lib.rs`).

fn main() -> std::process::ExitCode {
    tower_jwt_plan_gateway::cli::main()
}
