//! What an API key may do: scopes, and the named roles that bundle them (docs/design.md section 8).
//! Every route requires exactly one scope; a key holds either a role or an explicit list of
//! scopes. Parsed from their stable strings once, at the edge.

use std::{fmt, str::FromStr};

macro_rules! scopes {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// One permission, named `area:verb` on the wire and in the database.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            $(#[doc = $doc] $variant,)*
        }

        impl Scope {
            /// Every scope, in a stable order.
            pub const ALL: &'static [Scope] = &[$(Scope::$variant,)*];

            /// The stable name (`sends:write`).
            pub fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $name,)* }
            }
        }

        impl FromStr for Scope {
            type Err = AccessError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($name => Ok(Scope::$variant),)* _ => Err(AccessError::UnknownScope(s.to_owned())) }
            }
        }
    };
}

scopes! {
    MailboxesRead => "mailboxes:read", "See mailboxes (never their credentials).";
    MailboxesWrite => "mailboxes:write", "Connect, re-check, pace and disconnect mailboxes.";
    SendsRead => "sends:read", "See sends.";
    SendsWrite => "sends:write", "Enqueue sends.";
    SendsResolve => "sends:resolve", "Settle ambiguous sends (mark sent, resend, cancel).";
    EventsRead => "events:read", "Read the event feed.";
    WebhooksRead => "webhooks:read", "See webhooks and their deliveries.";
    WebhooksWrite => "webhooks:write", "Register and delete webhooks.";
    VaultRead => "vault:read", "See the workspace's data-key versions (never key material).";
    VaultRotate => "vault:rotate", "Rotate the workspace's data key.";
    WorkspacesRead => "workspaces:read", "See the workspace and the client sub-workspaces it created.";
    WorkspacesWrite => "workspaces:write", "Create and delete client sub-workspaces.";
    GrantsWrite => "grants:write", "Give the parent agency access to a sub-workspace, or take it back.";
    KeysRead => "keys:read", "See the workspace's API keys (never their secrets).";
    KeysWrite => "keys:write", "Create and revoke API keys, never wider than the creating key.";
    AuditRead => "audit:read", "Read the workspace's audit trail.";
    UsageRead => "usage:read", "Read the workspace's usage.";
    SuppressionsRead => "suppressions:read", "See the suppression list.";
    SuppressionsWrite => "suppressions:write", "Add to, import into and remove from the suppression list.";
    ContactsErase => "contacts:erase", "Erase a contact's data from the workspace (a data subject's right).";
    ExportRead => "export:read", "Export the workspace's data (sends, events, mailboxes, suppressions, audit).";
}

impl Scope {
    /// Parses scope names into a sorted list without repeats; the first unknown name is the
    /// error.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Scope>, AccessError> {
        let mut scopes = names.iter().map(|n| n.as_ref().parse()).collect::<Result<Vec<Scope>, _>>()?;
        scopes.sort();
        scopes.dedup();
        Ok(scopes)
    }
}

/// A named bundle of scopes, for people who should not have to pick scopes one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything in the workspace.
    Owner,
    /// Everything but the workspace's data keys, its sub-workspaces and its grants (erasure and
    /// export included).
    Admin,
    /// Runs campaigns: mailboxes, sends, events, suppressions (a copywriter, a campaign manager). Cannot rotate
    /// keys, settle ambiguous sends or change webhooks.
    Operator,
    /// Reads: mailboxes, sends, events, webhooks, usage, suppressions.
    Analyst,
    /// Usage only.
    Billing,
}

impl Role {
    /// Every role.
    pub const ALL: &'static [Role] = &[Role::Owner, Role::Admin, Role::Operator, Role::Analyst, Role::Billing];

    /// The stable name (`owner`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Analyst => "analyst",
            Role::Billing => "billing",
        }
    }

    /// The scopes the role holds.
    pub fn scopes(self) -> &'static [Scope] {
        use Scope::*;
        match self {
            Role::Owner => Scope::ALL,
            Role::Admin => &[
                MailboxesRead,
                MailboxesWrite,
                SendsRead,
                SendsWrite,
                SendsResolve,
                EventsRead,
                WebhooksRead,
                WebhooksWrite,
                VaultRead,
                WorkspacesRead,
                KeysRead,
                KeysWrite,
                AuditRead,
                UsageRead,
                SuppressionsRead,
                SuppressionsWrite,
                ContactsErase,
                ExportRead,
            ],
            Role::Operator => &[
                MailboxesRead,
                MailboxesWrite,
                SendsRead,
                SendsWrite,
                EventsRead,
                WebhooksRead,
                SuppressionsRead,
                SuppressionsWrite,
            ],
            Role::Analyst => &[MailboxesRead, SendsRead, EventsRead, WebhooksRead, UsageRead, SuppressionsRead],
            Role::Billing => &[UsageRead],
        }
    }
}

impl FromStr for Role {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.iter().copied().find(|r| r.as_str() == s).ok_or_else(|| AccessError::UnknownRole(s.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a key may do: a role, or an explicit list of scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A named role.
    Role(Role),
    /// Exactly these scopes.
    Scopes(Vec<Scope>),
}

impl Grant {
    /// Whether the grant holds `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes().contains(&scope)
    }

    /// The scopes held.
    pub fn scopes(&self) -> &[Scope] {
        match self {
            Grant::Role(r) => r.scopes(),
            Grant::Scopes(s) => s,
        }
    }

    /// The scopes of this grant that `other` does not hold (empty when it is no wider).
    pub fn beyond(&self, other: &Grant) -> Vec<Scope> {
        self.scopes().iter().copied().filter(|s| !other.allows(*s)).collect()
    }

    /// What both hold: a parent's key acting in a child through the child's grant.
    pub fn intersect(&self, scopes: &[Scope]) -> Grant {
        Grant::Scopes(self.scopes().iter().copied().filter(|s| scopes.contains(s)).collect())
    }

    /// From a stored row: a role name, or else the scope names.
    pub fn from_stored(role: Option<&str>, scopes: &[String]) -> Result<Self, AccessError> {
        match role {
            Some(r) => Ok(Grant::Role(r.parse()?)),
            None => Ok(Grant::Scopes(Scope::parse_list(scopes)?)),
        }
    }
}

/// A role or scope name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Not a scope.
    #[error("`{0}` is not a scope")]
    UnknownScope(String),
    /// Not a role.
    #[error("`{0}` is not a role (owner, admin, operator, analyst, billing)")]
    UnknownRole(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_and_role_round_trips_through_its_name() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(*s));
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        assert!("sends:delete".parse::<Scope>().is_err());
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn roles_narrow_from_owner_to_billing() {
        let held = |r: Role| Scope::ALL.iter().filter(|s| Grant::Role(r).allows(**s)).count();
        assert_eq!(held(Role::Owner), Scope::ALL.len());
        assert!(!Grant::Role(Role::Admin).allows(Scope::VaultRotate));
        assert!(!Grant::Role(Role::Operator).allows(Scope::SendsResolve));
        assert!(Grant::Role(Role::Operator).allows(Scope::SendsWrite));
        assert!(!Grant::Role(Role::Analyst).allows(Scope::SendsWrite));
        assert_eq!(held(Role::Billing), 1);
        assert!(Grant::Role(Role::Billing).allows(Scope::UsageRead));
        assert_eq!(Grant::Role(Role::Owner).beyond(&Grant::Role(Role::Admin)).len(), 3);
        assert!(Grant::Role(Role::Analyst).beyond(&Grant::Role(Role::Admin)).is_empty());
        for r in Role::ALL {
            assert!(r.scopes().iter().all(|s| Grant::Role(Role::Owner).allows(*s)));
        }
    }
}
