//! What the integration tests and the demo share: a local AWS sandbox, a
//! Lambda Runtime API stand-in that drives the built binaries, request
//! counting, and the events under `events/`.

pub mod accounts;
pub mod canary;
pub mod cli;
pub mod emf;
pub mod platform;
pub mod proxy;
pub mod runtime;
pub mod sandbox;
pub mod stats;
pub mod wire;

use serde_json::Value;

/// An event from `events/`, by file name.
pub fn event(name: &str) -> Value {
    let path = sandbox::workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
