//! The broker's own view of the services' vhost, through `rabbitmqctl` on the broker's
//! host (the management plugin may be off): which connections and channels the services
//! hold, and what is left in each queue.

use std::collections::{BTreeMap, BTreeSet};

async fn rabbitmqctl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .arg("--no-table-headers")
        .output()
        .await
        .expect("rabbitmqctl runs on the broker's host");
    assert!(
        out.status.success(),
        "rabbitmqctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The services' connections and the channels on them, by the name each connection gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Holdings {
    /// Service name → its connections' process ids.
    pub(crate) connections: BTreeMap<String, BTreeSet<String>>,
    /// Service name → the process ids of its channels that consume.
    pub(crate) consuming_channels: BTreeMap<String, BTreeSet<String>>,
}

/// What `services` hold on `vhost` now (two calls to `rabbitmqctl`).
pub(crate) async fn holdings(vhost: &str, services: &[&str]) -> Holdings {
    let conns = rabbitmqctl(&["list_connections", "pid", "vhost", "client_properties"]).await;
    let mut owner = BTreeMap::new();
    let mut h = Holdings::default();
    for line in conns.lines() {
        let cols: Vec<&str> = line.splitn(3, '\t').collect();
        let [pid, v, props] = cols[..] else { continue };
        if v != vhost {
            continue;
        }
        if let Some(s) = services
            .iter()
            .find(|s| props.contains(&format!("\"{s}\"")))
        {
            owner.insert(pid.to_owned(), (*s).to_owned());
            h.connections
                .entry((*s).to_owned())
                .or_default()
                .insert(pid.to_owned());
        }
    }
    h.consuming_channels = consuming_channels(&owner).await;
    h
}

/// Connection process id → the service that opened it.
pub(crate) fn owners(h: &Holdings) -> BTreeMap<String, String> {
    h.connections
        .iter()
        .flat_map(|(s, pids)| pids.iter().map(move |p| (p.clone(), s.clone())))
        .collect()
}

/// What the connections of `owner` hold now, from the channel list alone (one call to
/// `rabbitmqctl`): a connection the kit replaced has a new process id, so its channels
/// are not counted, and the old one shows as gone.
pub(crate) async fn holdings_of(owner: &BTreeMap<String, String>) -> Holdings {
    let chans = rabbitmqctl(&["list_channels", "pid", "connection", "consumer_count"]).await;
    let mut h = Holdings::default();
    for line in chans.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [pid, conn, consumers] = cols[..] else {
            continue;
        };
        if let Some(s) = owner.get(conn) {
            h.connections
                .entry(s.clone())
                .or_default()
                .insert(conn.to_owned());
            if consumers != "0" {
                h.consuming_channels
                    .entry(s.clone())
                    .or_default()
                    .insert(pid.to_owned());
            }
        }
    }
    h
}

async fn consuming_channels(
    owner: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let chans = rabbitmqctl(&["list_channels", "pid", "connection", "consumer_count"]).await;
    let mut h = Holdings::default();
    for line in chans.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [pid, conn, consumers] = cols[..] else {
            continue;
        };
        if let Some(s) = owner.get(conn)
            && consumers != "0"
        {
            h.consuming_channels
                .entry(s.clone())
                .or_default()
                .insert(pid.to_owned());
        }
    }
    h.consuming_channels
}

/// What changed between `before` and `now`: each connection or consuming channel that is
/// gone (closed, whether or not the kit opened another since).
pub(crate) fn closed(before: &Holdings, now: &Holdings) -> Vec<String> {
    let mut gone = Vec::new();
    for (what, b, n) in [
        ("connection", &before.connections, &now.connections),
        (
            "consuming channel",
            &before.consuming_channels,
            &now.consuming_channels,
        ),
    ] {
        for (service, pids) in b {
            let empty = BTreeSet::new();
            let still = n.get(service).unwrap_or(&empty);
            for pid in pids.difference(still) {
                gone.push(format!("{service}'s {what} {pid} closed"));
            }
        }
    }
    gone
}

/// A queue's messages: `(name, ready, unacknowledged)`.
pub(crate) async fn queues(vhost: &str) -> Vec<(String, u64, u64)> {
    rabbitmqctl(&[
        "list_queues",
        "-p",
        vhost,
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ])
    .await
    .lines()
    .filter_map(|l| {
        let cols: Vec<&str> = l.split('\t').collect();
        let [name, ready, unacked] = cols[..] else {
            return None;
        };
        Some((name.to_owned(), ready.parse().ok()?, unacked.parse().ok()?))
    })
    .collect()
}

/// The broker's `max_message_size` (RabbitMQ's default, 128 MiB, when it cannot be read).
pub(crate) async fn max_message_size() -> usize {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "-q",
            "eval",
            "application:get_env(rabbit, max_message_size).",
        ])
        .output()
        .await
        .expect("rabbitmqctl runs on the broker's host");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_start_matches("{ok,")
        .trim_end_matches('}')
        .parse()
        .unwrap_or(128 * 1024 * 1024)
}
