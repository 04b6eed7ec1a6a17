//! Logging set-up, done once at start-up.

use tracing_subscriber::{EnvFilter, fmt};

use crate::settings::Log;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    // Colours only for a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A second init (tests, the demo calling in) is harmless: keep the first subscriber.
    let _ = if log.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
