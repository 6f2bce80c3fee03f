//! Log output: `tracing` events as text on stderr, so that stdout stays clean for tables and
//! JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with the configured filter (`log.level`); `RUST_LOG`, when
/// set and valid, takes precedence, as Rust developers expect.
pub fn init(level: &str) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .and_then(|value| EnvFilter::try_new(value).ok());
    // `log.level` was validated when the configuration was loaded.
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(level));
    // try_init: a second call (tests) keeps the first subscriber instead of panicking.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files and CI logs.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
