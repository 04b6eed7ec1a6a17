//! The final count of a chaos run: ledger against mailbox against what the peer dropped.

use std::{
    collections::{HashMap, HashSet},
    fmt,
};

use mailroom_domain::{SendState, WorkspaceId};
use mailroom_store::{PgPool, sends};

use crate::{Peers, imap};

/// What a chaos run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Sends enqueued.
    pub n: usize,
    /// Ledger counts by state.
    pub states: HashMap<String, i64>,
    /// Distinct ledger Message-IDs found in the recipients' folders.
    pub delivered: usize,
    /// Messages found more than once.
    pub duplicates: usize,
    /// `sent` sends missing from the mailbox.
    pub sent_missing: usize,
    /// Ambiguous sends the peer never dropped (should be 0).
    pub ambiguous_not_dropped: usize,
    /// Ambiguous sends that nevertheless reached the mailbox (reconciliation could not tell).
    pub ambiguous_delivered: usize,
    /// Connections the peer dropped after DATA (delivered anyway / not).
    pub dropped: (usize, usize),
    /// 421 answers the peer gave.
    pub throttled: u64,
    /// Workers SIGKILLed.
    pub kills: usize,
    /// Processes that exited by themselves and were restarted.
    pub restarts: usize,
    /// Wall time.
    pub seconds: f64,
    /// Why the ambiguous sends are ambiguous (distinct reasons, with counts).
    pub ambiguous_reasons: Vec<(String, usize)>,
}

impl Report {
    fn state(&self, s: &str) -> i64 {
        self.states.get(s).copied().unwrap_or(0)
    }

    fn non_terminal(&self) -> i64 {
        self.n as i64 - ["sent", "failed", "ambiguous", "cancelled"].iter().map(|s| self.state(s)).sum::<i64>()
    }

    fn balance(&self) -> i64 {
        let ambiguous_undelivered = self.state("ambiguous") - self.ambiguous_delivered as i64;
        self.delivered as i64 + self.state("failed") + ambiguous_undelivered
    }

    fn checks(&self) -> [bool; 5] {
        [
            self.duplicates == 0,
            self.non_terminal() == 0,
            self.balance() == self.n as i64,
            self.sent_missing == 0,
            self.ambiguous_not_dropped == 0,
        ]
    }

    /// Whether every promise held.
    pub fn passed(&self) -> bool {
        self.checks().iter().all(|c| *c)
    }

    /// `checks: N passed, M failed`, a closing line test harnesses recognise.
    pub fn tally(&self) -> String {
        let passed = self.checks().iter().filter(|c| **c).count();
        format!("checks: {passed} passed, {} failed", self.checks().len() - passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos run: {} sends in {:.0} s; {} workers killed, {} processes restarted",
            self.n, self.seconds, self.kills, self.restarts
        )?;
        writeln!(
            f,
            "  peer faults: {} dropped after DATA ({} delivered anyway), {} answered 421",
            self.dropped.0 + self.dropped.1,
            self.dropped.0,
            self.throttled
        )?;
        writeln!(
            f,
            "  ledger: sent {}, failed {}, ambiguous {}, not finished {}",
            self.state("sent"),
            self.state("failed"),
            self.state("ambiguous"),
            self.non_terminal()
        )?;
        writeln!(
            f,
            "  mailbox: {} delivered, {} duplicates, {} sent but missing",
            self.delivered, self.duplicates, self.sent_missing
        )?;
        writeln!(
            f,
            "  delivered + failed + ambiguous (undelivered) = {} of {}; ambiguous not dropped by the peer: {}; ambiguous but delivered: {}",
            self.balance(),
            self.n,
            self.ambiguous_not_dropped,
            self.ambiguous_delivered
        )?;
        for (reason, n) in &self.ambiguous_reasons {
            writeln!(f, "  ambiguous x{n}: {reason}")?;
        }
        Ok(())
    }
}

async fn rows(pool: &PgPool, ws: WorkspaceId, state: SendState) -> anyhow::Result<Vec<sends::SendRow>> {
    let mut conn = pool.acquire().await?;
    let (mut out, mut after) = (vec![], None);
    loop {
        let page = sends::list(&mut conn, ws, state, after, 1_000).await?;
        out.extend(page.iter().cloned());
        match page.last() {
            Some(last) if page.len() == 1_000 => after = Some(last.send_id()),
            _ => return Ok(out),
        }
    }
}

/// Counts everything once all processes are stopped.
pub(super) async fn count(
    pool: &PgPool,
    ws: WorkspaceId,
    peers: &Peers,
    folders: &[String],
    n: usize,
) -> anyhow::Result<Report> {
    let mut conn = pool.acquire().await?;
    let states = sends::count_by_state(&mut conn, ws).await?.into_iter().collect();
    drop(conn);
    let mut seen: Vec<String> = vec![];
    for folder in folders {
        seen.extend(
            imap::message_ids(peers.info.imap_port, &peers.info.inbox, &peers.info.inbox_password, folder).await?,
        );
    }
    let unique: HashSet<&String> = seen.iter().collect();
    let sent: HashSet<String> = rows(pool, ws, SendState::Sent).await?.into_iter().map(|r| r.message_id).collect();
    let ambiguous_rows = rows(pool, ws, SendState::Ambiguous).await?;
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for r in &ambiguous_rows {
        *reasons.entry(r.failure_reason.clone().unwrap_or_default()).or_default() += 1;
    }
    let ambiguous: Vec<String> = ambiguous_rows.into_iter().map(|r| r.message_id).collect();
    let stats = peers.command("stats")?;
    let drops: Vec<(String, bool)> = stats["dropped"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (d["message_id"].as_str().unwrap_or_default().to_owned(), d["delivered"].as_bool().unwrap_or(false)))
        .collect();
    let dropped: HashSet<&str> = drops.iter().map(|(m, _)| m.as_str()).collect();
    let delivered = unique.iter().filter(|m| sent.contains(m.as_str()) || ambiguous.contains(m)).count();
    Ok(Report {
        n,
        states,
        delivered,
        duplicates: seen.len() - unique.len(),
        sent_missing: sent.iter().filter(|m| !unique.contains(m)).count(),
        ambiguous_not_dropped: ambiguous.iter().filter(|m| !dropped.contains(m.as_str())).count(),
        ambiguous_delivered: ambiguous.iter().filter(|m| unique.contains(m)).count(),
        dropped: (drops.iter().filter(|d| d.1).count(), drops.iter().filter(|d| !d.1).count()),
        throttled: stats["throttled"].as_u64().unwrap_or(0),
        ambiguous_reasons: reasons.into_iter().collect(),
        ..Report::default()
    })
}
