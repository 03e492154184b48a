//! `gateway`: the example API gateway built on `tower-jwt-plan`.
//!
//! The gateway is the workspace member `gateway/` (crate `tower-jwt-plan-gateway`); this
//! example only runs it, so that the command below keeps working from the repository root.
//! Its configuration file, behaviour and modules are documented in `gateway/src/lib.rs`.
//!
//! # Run with
//!
//! ```text
//! # Self-contained demo: built-in echo upstream, demo IdP (JWKS), one API `echo` at /echo.
//! # It prints a ready-to-paste curl line with a valid one-hour token.
//! cargo run --release --example gateway
//!
//! # Your own APIs, from a file; --listen overrides the file's `listen`.
//! cargo run --release --example gateway -- --config gateway.toml [--listen 127.0.0.1:8080]
//! ```

/// The same allocator as the gateway's own binary (`gateway/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tower_jwt_plan_gateway::cli::main()
}
