//! Logging set-up, done once at start-up.

use tracing_subscriber::{EnvFilter, fmt};

use crate::settings::Log;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests, the demo calling in) is harmless: keep the first subscriber.
    let _ = if log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
