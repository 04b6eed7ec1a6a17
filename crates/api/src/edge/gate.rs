//! The network gate: private by default. An address beyond loopback needs the operator's
//! opt-in and an admin token rotated recently.

/// Why `serve` refuses an address beyond loopback.
#[derive(Debug, thiserror::Error)]
pub enum NetworkGate {
    /// Not opted in.
    #[error(
        "api.bind = {0} is reachable beyond this machine; set api.allow_network = true to serve there \
         (and rotate the admin token with `mailroom admin rotate-token`), or bind to 127.0.0.1"
    )]
    NotAllowed(std::net::SocketAddr),
    /// The admin token is the first, auto-created one.
    #[error(
        "api.bind = {0} serves the network, but the admin token is still the auto-created first one; \
         run `mailroom admin rotate-token` and keep the new token somewhere safe"
    )]
    FirstToken(std::net::SocketAddr),
    /// The admin token is older than 30 days.
    #[error(
        "api.bind = {0} serves the network, but the admin token was last rotated {1} days ago (at most \
         {MAX_TOKEN_AGE_DAYS}); run `mailroom admin rotate-token`"
    )]
    StaleToken(std::net::SocketAddr, i64),
}

/// How old the admin token may be when the API serves beyond loopback.
pub const MAX_TOKEN_AGE_DAYS: i64 = 30;

/// Private by default: an address beyond loopback needs `allow_network` and an admin token
/// rotated (not the auto-created first) within [`MAX_TOKEN_AGE_DAYS`].
pub fn network_gate(
    bind: std::net::SocketAddr,
    allow_network: bool,
    admin: &crate::admin_token::AdminToken,
) -> Result<(), NetworkGate> {
    if bind.ip().is_loopback() {
        return Ok(());
    }
    if !allow_network {
        return Err(NetworkGate::NotAllowed(bind));
    }
    let (generation, created_at) = admin.generation();
    if generation <= 1 {
        return Err(NetworkGate::FirstToken(bind));
    }
    let age = (chrono::Utc::now() - created_at).num_days();
    if age >= MAX_TOKEN_AGE_DAYS {
        return Err(NetworkGate::StaleToken(bind, age));
    }
    tracing::warn!(%bind, "serving beyond loopback (api.allow_network); keep the admin token safe");
    Ok(())
}
