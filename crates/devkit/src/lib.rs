//! Development peers: what `mailroom demo` and the end-to-end tests run against.
//!
//! The mail peers are `tests/peers/peers.py` (an aiosmtpd submission server relaying into a
//! private Dovecot), run from the virtual environment that `scripts/setup-peers` makes. They
//! live as long as the [`Peers`] value: the script exits when its standard input closes, so
//! not even a killed test leaves them behind.
#![deny(missing_docs)]

pub mod api_bench;
pub mod bench;
pub mod chaos;
pub mod export_bench;
pub mod imap;
pub mod kms;
mod peers;
mod postgres;
pub mod reply_bench;
pub mod vault_bench;

pub use peers::{PeerInfo, Peers};
pub use postgres::PrivateCluster;

use std::path::PathBuf;

/// The repository's root directory (where `tests/peers` and `.peers` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
