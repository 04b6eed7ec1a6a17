//! Safe egress: which addresses Mailroom connects to on a tenant's word (webhook URLs, SMTP
//! and IMAP hosts).
//!
//! Deny by default: a host is resolved, every address it resolves to is checked, and the
//! connection is made to the checked addresses only, so a name cannot resolve to a public
//! address for the check and to a private one for the connect. Loopback, private, shared
//! (carrier-grade NAT), link-local (the cloud metadata service), unique-local, multicast,
//! broadcast, unspecified, reserved and documentation ranges, and IPv6 forms that embed an
//! IPv4 address are refused. Numeric tricks (`2130706433`, `127.1`, `0x7f.1`) are resolved
//! first, like any other name, and meet the same check. The operator's allow-list
//! (`egress.allow`) opens networks, addresses or host names (optionally on one port) for
//! self-hosted servers.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use ipnet::IpNet;
pub use ranges::forbidden;

mod ranges;

/// One `egress.allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    /// A network or one address, on one port or any.
    Net(IpNet, Option<u16>),
    /// A host name (lower case), on one port or any: trusted whatever it resolves to.
    Host(String, Option<u16>),
}

/// Where Mailroom may connect on a tenant's word. The default allows the public internet only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<Allow>,
}

/// An `egress.allow` entry that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{entry}` is not an egress.allow entry: write a network (`10.1.2.0/24`), an address \
     (`10.1.2.3`, `[fd00::1]:587`) or a host name (`smtp.internal`, `smtp.internal:587`)"
)]
pub struct BadAllowEntry {
    /// The entry as written.
    pub entry: String,
}

/// Why a connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The host resolves to an address the policy does not allow.
    #[error(
        "{host} resolves to a {kind} address, which Mailroom does not connect to; use the server's \
         public name (the operator can allow a private server with egress.allow)"
    )]
    Denied {
        /// The host as given.
        host: String,
        /// What kind of address it is (`loopback`, `private`, ...).
        kind: &'static str,
    },
    /// A URL that names credentials, a scheme other than HTTP(S), or no host.
    #[error("{0}")]
    BadUrl(&'static str),
    /// Plain text (no TLS) to a host the operator has not allowed.
    #[error("plain text (tls = none) is only allowed to servers the operator allows with egress.allow")]
    PlainText,
    /// The host could not be resolved.
    #[error("{host} could not be resolved")]
    Unresolved {
        /// The host as given.
        host: String,
        /// The resolver's error, for the operator's log.
        #[source]
        source: std::io::Error,
    },
}

impl EgressPolicy {
    /// A policy from the operator's `egress.allow` entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadAllowEntry> {
        let allow = entries.iter().map(|e| parse_entry(e.as_ref())).collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// Whether the operator allowed `host` on `port` by name, or every address in `addrs`.
    fn allowed(&self, host: &str, port: u16, ip: Option<IpAddr>) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.allow.iter().any(|a| match a {
            Allow::Host(h, p) => h.eq_ignore_ascii_case(host.trim_end_matches('.')) && port_ok(p),
            Allow::Net(net, p) => ip.is_some_and(|ip| net.contains(&ip)) && port_ok(p),
        })
    }

    /// Checks one address `host` resolved to.
    pub fn check(&self, host: &str, addr: SocketAddr) -> Result<(), Refused> {
        match forbidden(addr.ip()) {
            Some(kind) if !self.allowed(host, addr.port(), Some(addr.ip())) => {
                Err(Refused::Denied { host: host.to_owned(), kind })
            }
            _ => Ok(()),
        }
    }

    /// Resolves `host` and checks every address; the connection must go to what this returns.
    /// One forbidden address refuses the host: a name that mixes public and private addresses
    /// is not trusted with either.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let unresolved = |source| Refused::Unresolved { host: host.to_owned(), source };
        // A bracketed IPv6 literal (from a URL) resolves as the bare address.
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port)).await.map_err(unresolved)?.collect();
        if addrs.is_empty() {
            return Err(unresolved(std::io::Error::other("no addresses")));
        }
        if !self.allowed(bare, port, None) {
            addrs.iter().try_for_each(|a| self.check(bare, *a))?;
        }
        Ok(addrs)
    }

    /// Whether plain text (no TLS) may go to `host` on `port` resolving to `addrs`: only when
    /// the operator allowed the host by name, or every address it resolves to.
    pub fn allows_plain_text(&self, host: &str, port: u16, addrs: &[SocketAddr]) -> bool {
        self.allowed(host, port, None)
            || (!addrs.is_empty() && addrs.iter().all(|a| self.allowed(host, port, Some(a.ip()))))
    }
}

/// A checked URL target: connect to `host` at `addrs` only (pin the HTTP client's resolution
/// to them; a literal address needs no pinning).
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL's host: a name, or an address literal.
    pub host: String,
    /// The addresses checked.
    pub addrs: Vec<SocketAddr>,
}

impl EgressPolicy {
    /// Checks a URL a tenant gave (a webhook): HTTP(S), no user-info (credentials in a URL end
    /// up in logs), and a host that resolves to allowed addresses only. Numeric hosts are
    /// already normalised by URL parsing (`http://2130706433/` is `127.0.0.1`).
    pub async fn vet_url(&self, url: &reqwest::Url) -> Result<Target, Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::BadUrl("the URL must be http:// or https://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::BadUrl("the URL must not carry a user name or password"));
        }
        let port = url.port_or_known_default().ok_or(Refused::BadUrl("the URL needs a port"))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(Refused::BadUrl("the URL needs a host")),
        };
        let addrs = self.resolve(&host, port).await?;
        Ok(Target { host, addrs })
    }
}

fn parse_entry(entry: &str) -> Result<Allow, BadAllowEntry> {
    let bad = || BadAllowEntry { entry: entry.to_owned() };
    let e = entry.trim();
    if let Ok(net) = IpNet::from_str(e) {
        return Ok(Allow::Net(net, None));
    }
    if let Ok(ip) = IpAddr::from_str(e) {
        return Ok(Allow::Net(IpNet::from(ip), None));
    }
    if let Ok(sa) = SocketAddr::from_str(e) {
        return Ok(Allow::Net(IpNet::from(sa.ip()), Some(sa.port())));
    }
    let (host, port) = match e.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?)),
        None => (e, None),
    };
    let is_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !is_name {
        return Err(bad());
    }
    Ok(Allow::Host(host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn numeric_tricks_resolve_to_loopback_and_are_refused() {
        let policy = EgressPolicy::default();
        for host in
            ["127.0.0.1", "2130706433", "127.1", "0x7f.1", "0177.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"]
        {
            match policy.resolve(host, 25).await {
                Err(Refused::Denied { .. }) => {}
                other => panic!("{host}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn webhook_urls_are_vetted_on_their_resolved_addresses() {
        let policy = EgressPolicy::default();
        for url in [
            "http://127.0.0.1/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://localhost:8080/",
        ] {
            let refused = policy.vet_url(&url.parse().unwrap()).await;
            assert!(matches!(refused, Err(Refused::Denied { .. })), "{url}: {refused:?}");
        }
        for url in ["http://user:pw@example.com/", "ftp://example.com/"] {
            assert!(matches!(policy.vet_url(&url.parse().unwrap()).await, Err(Refused::BadUrl(_))), "{url}");
        }
        let allowed = EgressPolicy::parse(&["127.0.0.0/8"]).unwrap();
        let target = allowed.vet_url(&"http://127.0.0.1:9/".parse().unwrap()).await.unwrap();
        assert_eq!(target.addrs, vec!["127.0.0.1:9".parse().unwrap()]);
    }

    #[tokio::test]
    async fn the_allow_list_opens_networks_addresses_and_names_on_their_ports() {
        let policy = EgressPolicy::parse(&["127.0.0.0/8", "[::1]:2525", "localhost:587"]).unwrap();
        assert!(policy.resolve("127.0.0.1", 9).await.is_ok());
        assert!(policy.resolve("::1", 2525).await.is_ok());
        assert!(matches!(policy.resolve("::1", 25).await, Err(Refused::Denied { .. })));
        assert!(policy.resolve("localhost", 587).await.is_ok());
        let local: SocketAddr = "127.0.0.1:143".parse().unwrap();
        assert!(policy.allows_plain_text("127.0.0.1", 143, &[local]));
        assert!(!EgressPolicy::default().allows_plain_text("127.0.0.1", 143, &[local]));
        for bad in ["", "smtp..internal", "1.2.3.4.5", "host:0", "host:x", "10.0.0.0/33"] {
            assert!(EgressPolicy::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
