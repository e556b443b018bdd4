//! The transactional outbox across crashes. 1,000 item changes go through `example`'s RPC
//! routes while example's process (which runs the outbox relay) is killed with SIGKILL and
//! restarted twice, and catalog's process (the read model) is killed and restarted once.
//! Afterwards the read model equals the write model row for row, every committed event was
//! applied exactly once, and nothing was published that had not been committed.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::pg::TestDb;
use e2e::{RawPeer, unique, wait_until};
use lapin::options::{ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use stubs::example::items::{CreateItem, DeleteItem, UpdateItem};
use worker_kit::events::subscription_queue;
use worker_kit::rpc::{CallError, RpcClient};

const CHANGES: usize = 1000;
const WRITERS: usize = 4;
/// After how many changes which process is killed: example (with its relay) twice,
/// catalog once.
const KILLS: [(usize, &str); 3] = [(250, "example"), (450, "catalog"), (650, "example")];
const ROUTING_KEYS: [&str; 3] = [
    "example.item.created",
    "example.item.updated",
    "example.item.deleted",
];

/// One of the two services, run as its own process by the `event-service` binary (the code
/// of the real binaries) so it can be killed.
struct Service {
    which: &'static str,
    name: String,
    dsn: String,
    exchange: String,
    child: tokio::process::Child,
}

impl Service {
    fn spawn(which: &'static str, name: &str, dsn: &str, exchange: &str) -> Self {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_event-service"))
            .arg(which)
            .env("AMQP_URL", e2e::amqp_url())
            .env("EVENT_SERVICE_NAME", name)
            .env("DB_MAIN_DSN", dsn)
            .env("EVENTS_EXCHANGE", exchange)
            // Both services log in as the tests' one broker user.
            .env("EVENT_PUBLISHERS", "any")
            .env("OUTBOX_POLL_INTERVAL_MS", "200")
            // An event the read model cannot apply yet is retried after a wait in the
            // broker: short here, so the run does not wait out the default's seconds.
            .env("QUEUE_RETRY_DELAY_MS", "200")
            .env("MODE", "development")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("event-service starts");
        Self {
            which,
            name: name.to_owned(),
            dsn: dsn.to_owned(),
            exchange: exchange.to_owned(),
            child,
        }
    }

    /// SIGKILL (no drain, no goodbye to the broker or the database), then a new process.
    async fn kill_and_restart(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("a killed process exits")
            .unwrap();
        assert!(!status.success(), "{} was killed: {status}", self.which);
        eprintln!("{} killed ({status}); restarting", self.which);
        *self = Self::spawn(self.which, &self.name, &self.dsn, &self.exchange);
    }
}

/// Retries `op` past the failures a killed server causes (no route, a lost or unanswered
/// call) until it gives an outcome, for at most a minute.
async fn through_restarts<T, F, Fut>(what: &str, mut op: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let started = Instant::now();
    loop {
        match op().await {
            Err(
                e @ (CallError::NoRoute { .. }
                | CallError::Timeout { .. }
                | CallError::ConnectionLost { .. }
                | CallError::Refused { .. }),
            ) => {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{what}: no outcome within a minute, last {e}"
                );
                // Not a synchronization: a back-off, so a missing route is not hammered.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

fn error_type(e: &CallError) -> Option<&str> {
    match e {
        CallError::Remote { error, .. } => Some(error.error_type.as_str()),
        _ => None,
    }
}

/// The ids of the events in example's outbox, and how many are not sent yet.
async fn outbox(write: &tokio_postgres::Client) -> (HashSet<uuid::Uuid>, i64) {
    let rows = write
        .query(
            "SELECT event_id, sent_at IS NULL FROM worker_kit_outbox",
            &[],
        )
        .await
        .unwrap();
    let ids = rows.iter().map(|r| r.get(0)).collect();
    let pending = rows.iter().filter(|r| r.get::<_, bool>(1)).count();
    (ids, i64::try_from(pending).unwrap())
}

/// One writer's share of the changes, on items of its own: creates, updates, deletes and
/// updates of a missing item (refused in their transaction, so no event). Returns the
/// writer's live items and how many changes of each kind it made.
async fn writer(
    w: usize,
    client: &RpcClient,
    wpg: &tokio_postgres::Client,
    progress: &AtomicUsize,
) -> (Vec<i64>, HashMap<&'static str, usize>) {
    let mut live: Vec<i64> = Vec::new();
    let mut done: HashMap<&'static str, usize> = HashMap::new();
    // A fixed pseudo-random choice of item, so a failure can be replayed.
    let mut pick = 7 + w as u64;
    for n in 0..CHANGES / WRITERS {
        let i = n * WRITERS + w;
        pick = pick.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let which = usize::try_from(pick >> 33).unwrap() % live.len().max(1);
        let kind = match n % 10 {
            _ if live.is_empty() => "create",
            0..=3 => "create",
            4..=7 => "update",
            8 => "delete",
            _ => "update a missing item",
        };
        match kind {
            "create" => {
                let name = format!("item {i}");
                let req = CreateItem {
                    name: name.clone(),
                    price_cents: i64::try_from(i).unwrap(),
                    tags: vec![format!("t{}", i % 7)],
                };
                let id = match through_restarts("create", || client.call(&req)).await {
                    Ok(item) => item.id,
                    // An earlier attempt committed and its reply was lost with the process.
                    Err(e) if error_type(&e) == Some("Conflict") => wpg
                        .query_one("SELECT id FROM items WHERE name = $1", &[&name])
                        .await
                        .unwrap()
                        .get(0),
                    Err(e) => panic!("create {name}: {e}"),
                };
                live.push(id);
            }
            "update" => {
                let req = UpdateItem {
                    id: live[which],
                    name: None,
                    price_cents: Some(i64::try_from(i).unwrap() * 3),
                    tags: Some(vec![format!("t{}", i % 5), "updated".into()]),
                };
                through_restarts("update", || client.call(&req))
                    .await
                    .unwrap_or_else(|e| panic!("update {}: {e}", req.id));
            }
            "delete" => {
                let req = DeleteItem {
                    id: live.swap_remove(which),
                };
                match through_restarts("delete", || client.call(&req)).await {
                    Ok(_) => {}
                    // An earlier attempt committed and its reply was lost with the process.
                    Err(e) if error_type(&e) == Some("NotFound") => {}
                    Err(e) => panic!("delete {}: {e}", req.id),
                }
            }
            _ => {
                let req = UpdateItem {
                    id: -1,
                    name: None,
                    price_cents: Some(1),
                    tags: None,
                };
                let e = through_restarts("update -1", || client.call(&req))
                    .await
                    .expect_err("item -1 does not exist");
                assert_eq!(error_type(&e), Some("NotFound"), "{e}");
            }
        }
        *done.entry(kind).or_default() += 1;
        progress.fetch_add(1, Ordering::SeqCst);
    }
    (live, done)
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario end to end: start, load, kill both sides, restart, then check every event"
)]
async fn outbox_survives_sigkill_of_relay_and_subscriber() {
    let _serial = crate::serial().await;
    let _example = e2e::example_service_lock().await;
    let write = TestDb::with_models("example").await;
    let read = TestDb::with_models("catalog").await;
    let (wpg, rpg) = (write.client().await, read.client().await);
    let exchange = unique("events");
    let catalog_name = unique("catalog");
    let subscriptions: Vec<String> = ROUTING_KEYS
        .iter()
        .map(|k| subscription_queue(&catalog_name, k))
        .collect();
    let peer = RawPeer::connect().await;

    let mut catalog = Service::spawn("catalog", &catalog_name, &read.dsn, &exchange);
    wait_until(
        Duration::from_secs(60),
        "catalog consumes its three subscriptions",
        || {
            let (peer, subscriptions) = (&peer, &subscriptions);
            async move {
                for q in subscriptions {
                    match peer.try_counts(q).await {
                        Ok((_, consumers)) if consumers > 0 => {}
                        _ => return false,
                    }
                }
                true
            }
        },
    )
    .await;
    // A queue of the test's own sees every event the relay publishes, copies included.
    let observer = unique("observer");
    peer.channel
        .queue_declare(
            observer.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    peer.channel
        .queue_bind(
            observer.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut example = Service::spawn("example", "example", &write.dsn, &exchange);

    let mut config = e2e::config();
    config.rpc_timeout = Duration::from_secs(3);
    let client = RpcClient::new(&e2e::broker("outbox-driver").await, &config)
        .await
        .unwrap();
    // Writers run while the main task kills: calls are in flight at every kill.
    let progress = Arc::new(AtomicUsize::new(0));
    let wpg = Arc::new(wpg);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (client, wpg, progress) = (client.clone(), wpg.clone(), progress.clone());
            tokio::spawn(async move { writer(w, &client, &wpg, &progress).await })
        })
        .collect();
    for (at, what) in KILLS {
        wait_until(
            Duration::from_secs(120),
            &format!("{at} changes made"),
            || {
                let progress = &progress;
                async move { progress.load(Ordering::SeqCst) >= at }
            },
        )
        .await;
        let (_, pending) = outbox(&wpg).await;
        eprintln!("after {at} changes ({pending} events pending in the outbox):");
        match what {
            "example" => example.kill_and_restart().await,
            _ => catalog.kill_and_restart().await,
        }
    }
    let mut live = Vec::new();
    let mut done: HashMap<&str, usize> = HashMap::new();
    for w in writers {
        let (l, d) = w.await.expect("a writer");
        live.extend(l);
        for (k, n) in d {
            *done.entry(k).or_default() += n;
        }
    }
    eprintln!("{CHANGES} changes made: {done:?}");

    wait_until(
        Duration::from_secs(120),
        "the outbox is drained and the read model equals the write model",
        || {
            let (wpg, write, read) = (&wpg, &write, &read);
            async move {
                if outbox(wpg).await.1 > 0 {
                    return false;
                }
                let (w, r) = e2e::read_model::items(write, read).await;
                w == r
            }
        },
    )
    .await;
    let (w, r) = e2e::read_model::items(&write, &read).await;
    assert_eq!(w, r, "the read model equals the write model row for row");
    assert_eq!(w.len(), live.len(), "the write model holds the live items");

    let (committed, _) = outbox(&wpg).await;
    let applied_events = || async {
        rpg.query("SELECT event_id FROM worker_kit_processed_events", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect::<HashSet<uuid::Uuid>>()
    };
    // The read model can equal the write model while an event it could not apply yet (one
    // a later event superseded) still waits in a retry delay queue: wait for it too.
    wait_until(
        Duration::from_secs(60),
        "every committed event applied (retries included)",
        || async { applied_events().await == committed },
    )
    .await;
    let applied = applied_events().await;
    assert_eq!(applied, committed, "every committed event was applied");
    let counted: i64 = rpg
        .query_one("SELECT sum(applied)::bigint FROM catalog_progress", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        usize::try_from(counted).unwrap(),
        committed.len(),
        "each applied once: the read model's counter, which a duplicate does not move"
    );

    // What the relay published: every message is a committed event; copies (a batch
    // published again after a kill between confirm and commit) are the only repeats.
    let mut published: HashMap<uuid::Uuid, u32> = HashMap::new();
    while let Some(m) = peer.get(&observer).await {
        let id = m
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().parse::<uuid::Uuid>().expect("a uuid message id"))
            .expect("every event has a message id");
        assert!(
            committed.contains(&id),
            "event {id} was published but never committed"
        );
        *published.entry(id).or_default() += 1;
    }
    assert_eq!(
        published.len(),
        committed.len(),
        "every committed event was published"
    );
    let copies: u32 = published.values().map(|n| n - 1).sum();
    eprintln!(
        "{} events committed, applied once each; {copies} published twice",
        committed.len()
    );

    for s in [&mut example, &mut catalog] {
        let _ = s.child.start_kill();
        let _ = s.child.wait().await;
    }
    let routes: Vec<&str> = subscriptions.iter().map(String::as_str).collect();
    peer.delete_routes(&routes).await;
    peer.delete(&[&observer]).await;
    let _ = peer
        .channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    drop((wpg, rpg));
    write.drop_db().await;
    read.drop_db().await;
}
