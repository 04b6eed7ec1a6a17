//! Reading back what arrived, over IMAP.

use anyhow::Context as _;
use futures::TryStreamExt;

/// The `Message-ID` of every message in `folder` (empty if the folder does not exist yet).
pub async fn message_ids(port: u16, user: &str, password: &str, folder: &str) -> anyhow::Result<Vec<String>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.context("connecting to IMAP")?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?.context("no IMAP greeting")?;
    let mut session = client.login(user, password).await.map_err(|(e, _)| e).context("IMAP login")?;
    let mailbox = match session.select(folder).await {
        Ok(m) => m,
        Err(_) => {
            session.logout().await.ok();
            return Ok(vec![]);
        }
    };
    let mut ids = vec![];
    if mailbox.exists > 0 {
        let fetches: Vec<_> = session.fetch("1:*", "RFC822.HEADER").await?.try_collect().await?;
        for f in &fetches {
            let header = String::from_utf8_lossy(f.header().unwrap_or_default());
            if let Some(id) = header_value(&header, "message-id") {
                ids.push(id);
            }
        }
    }
    session.logout().await.ok();
    Ok(ids)
}

/// The headers of every message in `folder` (empty if the folder does not exist yet), each as
/// a map from lower-case name to its unfolded value (the first of each name).
pub async fn headers(
    port: u16,
    user: &str,
    password: &str,
    folder: &str,
) -> anyhow::Result<Vec<std::collections::BTreeMap<String, String>>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.context("connecting to IMAP")?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?.context("no IMAP greeting")?;
    let mut session = client.login(user, password).await.map_err(|(e, _)| e).context("IMAP login")?;
    let mut all = vec![];
    if let Ok(mailbox) = session.select(folder).await
        && mailbox.exists > 0
    {
        let fetches: Vec<_> = session.fetch("1:*", "RFC822.HEADER").await?.try_collect().await?;
        for f in &fetches {
            let header = String::from_utf8_lossy(f.header().unwrap_or_default());
            let mut map = std::collections::BTreeMap::new();
            for line in header.split("\r\n").filter(|l| !l.starts_with([' ', '\t'])) {
                if let Some((name, _)) = line.split_once(':') {
                    let name = name.trim().to_ascii_lowercase();
                    if !map.contains_key(&name)
                        && let Some(v) = header_value(&header, &name)
                    {
                        map.insert(name, v);
                    }
                }
            }
            all.push(map);
        }
    }
    session.logout().await.ok();
    Ok(all)
}

fn header_value(header: &str, name: &str) -> Option<String> {
    let mut lines = header.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            let mut value = v.trim().to_owned();
            // Unfolding removes the line break, not the white space that follows it.
            while let Some(cont) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(cont.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}

/// Appends a raw message to `folder` (a reply arriving in a mailbox, for reply detection).
pub async fn append(port: u16, user: &str, password: &str, folder: &str, raw: &[u8]) -> anyhow::Result<()> {
    append_all(port, user, password, folder, &[raw.to_vec()]).await
}

/// Appends raw messages to `folder` in one session.
pub async fn append_all(port: u16, user: &str, password: &str, folder: &str, raws: &[Vec<u8>]) -> anyhow::Result<()> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.context("connecting to IMAP")?;
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await?.context("no IMAP greeting")?;
    let mut session = client.login(user, password).await.map_err(|(e, _)| e).context("IMAP login")?;
    for raw in raws {
        session.append(folder, None, None, raw).await.context("IMAP APPEND")?;
    }
    session.logout().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folded_message_id_is_read_whole() {
        let h = "Subject: x\r\nMessage-ID:\r\n <abc@example.test>\r\nTo: y\r\n";
        assert_eq!(header_value(h, "message-id").as_deref(), Some("<abc@example.test>"));
    }
}
