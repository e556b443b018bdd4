//! `parked` through the real broker: messages parked by a real failing work-queue route,
//! then listed, shown, replayed (all, by id, and interrupted by killing the process) and
//! purged by the `parked` binary, run as an operator runs it. Every route has a unique
//! name; its queues are deleted at the end.

use std::collections::BTreeMap;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use e2e::{RawPeer, gzip, unique, wait_until};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;
use tokio::process::Command;
use tokio::sync::Mutex;
use worker_kit::queue::{QueueType, QueueWorker, parking_queue};
use worker_kit::{ErrorReply, Meta, Payload, State};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

async fn broken(Payload(_): Payload<Value>) -> Result<(), ErrorReply> {
    Err(ErrorReply::new("Broken", "this route always fails"))
}

/// A work-queue route whose handler always fails (one retry), with messages parked in it.
struct Parked {
    route: String,
    peer: RawPeer,
}

impl Parked {
    /// Publishes `bodies` to a new failing route as the Python seed would (gzip JSON,
    /// persistent, a `traceparent`), with message ids where given, and waits until all
    /// are parked.
    async fn new(test: &str, messages: &[(Option<&str>, &str)]) -> Self {
        Self::of_type(test, QueueType::Classic, messages).await
    }

    /// As [`Parked::new`], on a route (and parking queue) of type `kind`.
    async fn of_type(test: &str, kind: QueueType, messages: &[(Option<&str>, &str)]) -> Self {
        let route = unique(test);
        let running = e2e::start(
            e2e::runner("parked-broken").await.register_worker(
                QueueWorker::new()
                    .max_retries(1)
                    .queue_type(&route, kind)
                    .route(&route, broken),
            ),
        )
        .await;
        let peer = RawPeer::connect().await;
        for (id, text) in messages {
            let mut headers = FieldTable::default();
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(TRACEPARENT.into()),
            );
            let mut props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_encoding("gzip".into())
                .with_timestamp(now())
                .with_user_id("guest".into())
                .with_headers(headers);
            if let Some(id) = id {
                props = props.with_message_id((*id).into());
            }
            let body = serde_json::json!({ "data": text }).to_string();
            peer.publish(&route, &gzip(body.as_bytes()), props).await;
        }
        let parked = Self { route, peer };
        let want = u32::try_from(messages.len()).unwrap();
        wait_until(Duration::from_secs(20), "every message parked", || async {
            parked.depth().await == want
        })
        .await;
        running.stop().await.expect("the failing worker stops");
        parked
    }

    async fn depth(&self) -> u32 {
        self.peer.ready_count(&parking_queue(&self.route)).await
    }

    /// Takes every message off `queue`: their decoded `data` and headers.
    async fn drain(&self, queue: &str) -> Vec<(String, FieldTable)> {
        let mut out = Vec::new();
        while let Some(m) = self.peer.get(queue).await {
            let json = e2e::reply_json(&m.delivery);
            let text = json["data"].as_str().expect("text data").to_owned();
            out.push((
                text,
                m.delivery.properties.headers().clone().unwrap_or_default(),
            ));
        }
        out
    }

    async fn clean_up(self) {
        self.peer
            .delete(&[&self.route, &parking_queue(&self.route)])
            .await;
    }
}

/// What a fixed route's handler saw: each message's data, retry count and caller.
type Handled = Arc<Mutex<Vec<(String, u32, Option<String>)>>>;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `parked args…` with the tests' broker, stdin closed (no terminal).
fn parked(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parked"));
    cmd.args(args)
        .env("AMQP_URL", e2e::amqp_url())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run(cmd: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().await.expect("parked runs");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

async fn list(route: &str) -> Value {
    let (ok, out, err) = run(&mut parked(&["list", route, "--json"])).await;
    assert!(ok, "parked list failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("list --json is JSON ({e}): {out}"))
}

fn text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn list_and_show_leave_the_parked_messages_where_they_are() {
    let p = Parked::new(
        "parked-list",
        &[
            (Some("order-1"), "first"),
            (None, "second"),
            (None, "third"),
        ],
    )
    .await;
    let listed = list(&p.route).await;
    assert_eq!(listed["total"], 3, "{listed}");
    assert_eq!(listed["queue"], parking_queue(&p.route));
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["id"], "order-1");
    for m in messages {
        assert_eq!(m["error_type"], "Broken", "{m}");
        assert_eq!(m["error_message"], "this route always fails");
        assert_eq!(m["retry_count"], 1, "retried once before it was parked");
        assert_eq!(m["original_sender"], "guest");
        assert!(m["age_seconds"].as_u64().unwrap() < 600, "{m}");
    }
    let derived = messages[1]["id"].as_str().unwrap().to_owned();
    assert!(derived.starts_with("sha256:"), "{derived}");

    // Listing again: the same messages in the same order (listing took nothing).
    let again = list(&p.route).await;
    let ids = |v: &Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&again), ids(&listed));
    let (ok, out, _) = run(&mut parked(&["list", &p.route, "--limit", "2"])).await;
    assert!(
        ok && out.contains("3 parked") && out.contains("the first 2 listed"),
        "{out}"
    );

    let (ok, out, err) = run(&mut parked(&["show", &p.route, &derived])).await;
    assert!(ok, "{err}");
    assert!(out.contains("\"x-error-type\": \"Broken\""), "{out}");
    assert!(out.contains(TRACEPARENT), "{out}");
    assert!(
        out.contains("\"data\": \"second\""),
        "the body gunzipped, pretty: {out}"
    );
    let (ok, _, err) = run(&mut parked(&["show", &p.route, "no-such-id"])).await;
    assert!(!ok && err.contains("no message `no-such-id`"), "{err}");

    assert_eq!(p.depth().await, 3, "nothing left the parking queue");
    let order: Vec<String> = p
        .drain(&parking_queue(&p.route))
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        order,
        ["first", "second", "third"],
        "in the order they were parked"
    );
    p.clean_up().await;
}

/// A quorum parking queue counts each listing in `x-delivery-count`; the messages stay,
/// in their order, and the count shows in the listing.
#[tokio::test]
async fn a_quorum_parking_queue_is_listed_without_losing_or_reordering() {
    let p = Parked::of_type(
        "parked-quorum",
        QueueType::Quorum,
        &[
            (Some("q-1"), "one"),
            (Some("q-2"), "two"),
            (Some("q-3"), "three"),
        ],
    )
    .await;
    let ids = |v: &Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = list(&p.route).await;
    assert_eq!(ids(&first), ["q-1", "q-2", "q-3"]);
    let second = list(&p.route).await;
    assert_eq!(
        ids(&second),
        ["q-1", "q-2", "q-3"],
        "same order after a listing"
    );
    assert!(
        second["messages"][0]["delivery_count"].as_u64() >= Some(1),
        "the first listing was counted: {second}"
    );
    assert_eq!(p.depth().await, 3);
    p.clean_up().await;
}

#[tokio::test]
async fn replay_by_id_then_all_back_to_the_route() {
    let p = Parked::new(
        "parked-replay",
        &[
            (Some("a-1"), "one"),
            (Some("a-2"), "two"),
            (Some("a-3"), "three"),
        ],
    )
    .await;
    let (ok, out, err) = run(&mut parked(&["replay", &p.route, "--id", "a-2"])).await;
    assert!(ok, "{err}");
    assert!(out.contains("replayed a-2"), "{out}");
    let replayed = p.drain(&p.route).await;
    assert_eq!(replayed.len(), 1);
    let (data, headers) = &replayed[0];
    assert_eq!(data, "two");
    assert_eq!(
        headers.inner().get("x-retry-count"),
        Some(&AMQPValue::LongLongInt(0))
    );
    assert_eq!(text(headers, "x-replayed-by").as_deref(), Some("guest"));
    assert!(text(headers, "x-replayed-at").is_some());
    assert_eq!(text(headers, "traceparent").as_deref(), Some(TRACEPARENT));
    assert_eq!(
        text(headers, "x-original-user-id").as_deref(),
        Some("guest")
    );
    assert!(text(headers, "x-error-type").is_none());
    assert_eq!(p.depth().await, 2, "only a-2 left the parking queue");

    // A missing id fails, naming it, and replays nothing else.
    let (ok, _, err) = run(&mut parked(&["replay", &p.route, "--id", "a-9"])).await;
    assert!(!ok && err.contains("a-9"), "{err}");
    assert_eq!(p.depth().await, 2);

    // The rest, handled by the route's worker as fresh attempts.
    let seen = Arc::new(Mutex::new(Vec::new()));
    async fn record(
        State(seen): State<Handled>,
        meta: Meta,
        Payload(text): Payload<String>,
    ) -> Result<(), ErrorReply> {
        seen.lock()
            .await
            .push((text, meta.retry_count, meta.caller.user.clone()));
        Ok(())
    }
    let running = e2e::start(
        e2e::runner("parked-fixed").await.register_worker(
            QueueWorker::new()
                .route(&p.route, record)
                .with_state(seen.clone()),
        ),
    )
    .await;
    let (ok, out, err) = run(&mut parked(&["replay", &p.route, "--all", "--rate", "50"])).await;
    assert!(ok, "{err}");
    assert!(out.contains("replayed 2 of the 2"), "{out}");
    wait_until(Duration::from_secs(10), "both replays handled", || async {
        seen.lock().await.len() == 2
    })
    .await;
    running.stop().await.unwrap();
    let mut handled = seen.lock().await.clone();
    handled.sort();
    assert_eq!(
        handled,
        [
            ("one".to_owned(), 0, Some("guest".to_owned())),
            ("three".to_owned(), 0, Some("guest".to_owned()))
        ]
    );
    assert_eq!(p.depth().await, 0);
    p.clean_up().await;
}

#[tokio::test]
async fn a_replay_killed_half_way_loses_nothing_and_duplicates_at_most_one() {
    let texts: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    let messages: Vec<(Option<&str>, &str)> = texts.iter().map(|t| (None, t.as_str())).collect();
    let p = Parked::new("parked-kill", &messages).await;
    // Slow enough to be caught in the middle.
    let mut child = parked(&["replay", &p.route, "--all", "--rate", "4"])
        .spawn()
        .expect("parked starts");
    wait_until(
        Duration::from_secs(20),
        "a few replays confirmed",
        || async { p.peer.ready_count(&p.route).await >= 3 },
    )
    .await;
    child.kill().await.expect("kill parked");
    // The broker hands back what the killed process held when it sees the socket close.
    wait_until(
        Duration::from_secs(10),
        "every message back in one queue or the other",
        || async { p.depth().await + p.peer.ready_count(&p.route).await >= 20 },
    )
    .await;
    let still_parked = p.drain(&parking_queue(&p.route)).await;
    assert!(
        !still_parked.is_empty(),
        "the replay was interrupted half way"
    );
    let replayed = p.drain(&p.route).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (t, _) in still_parked.iter().chain(&replayed) {
        *counts.entry(t.clone()).or_default() += 1;
    }
    let keys: Vec<&String> = counts.keys().collect();
    assert_eq!(keys, texts.iter().collect::<Vec<_>>(), "nothing lost");
    let duplicates = counts.values().filter(|n| **n > 1).count();
    assert!(duplicates <= 1, "at most one duplicate: {counts:?}");
    assert!(counts.values().all(|n| *n <= 2));
    p.clean_up().await;
}

#[tokio::test]
async fn purge_asks_unless_told_and_prints_what_it_removed() {
    let p = Parked::new(
        "parked-purge",
        &[(Some("p-1"), "one"), (Some("p-2"), "two")],
    )
    .await;
    let (ok, _, err) = run(&mut parked(&["purge", &p.route])).await;
    assert!(!ok, "no terminal and no --yes: refused");
    assert!(
        err.contains("--yes") && err.contains("not a terminal"),
        "{err}"
    );
    assert_eq!(p.depth().await, 2, "nothing removed");

    let (ok, out, err) = run(&mut parked(&["purge", &p.route, "--yes"])).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("removed p-1 (Broken") && out.contains("removed p-2"),
        "{out}"
    );
    assert!(out.contains("removed 2 parked messages"), "{out}");
    assert_eq!(p.depth().await, 0);
    p.clean_up().await;
}

#[tokio::test]
async fn errors_say_what_is_wrong_and_what_to_do() {
    let route = unique("parked-none");
    let (ok, _, err) = run(&mut parked(&["list", &route])).await;
    assert!(
        !ok && err.contains("no parking queue") && err.contains(&route),
        "{err}"
    );
    let (ok, _, err) = run(&mut parked(&["list", &format!("{route}.dead")])).await;
    assert!(
        !ok && err.contains("give the route, not its parking queue"),
        "{err}"
    );

    let (ok, _, err) = run(parked(&["list", &route])
        .env("AMQP_URL", "amqp://guest:s3cret-pw@127.0.0.1:1/%2f")
        .env("AMQP_CONNECT_TIMEOUT_MS", "300"))
    .await;
    assert!(!ok && err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("s3cret-pw"), "the password is hidden: {err}");

    let p = Parked::new("parked-denied", &[(Some("d-1"), "one")]).await;
    let mut users = e2e::users::BrokerUsers::new("parked");
    let no_read = users.add_with_permissions("noread", [".*", ".*", "^$"]);
    let (ok, _, err) = run(parked(&["list", &p.route]).env("AMQP_URL", &no_read)).await;
    assert!(
        !ok && err.contains("refused user") && err.contains("set_permissions"),
        "{err}"
    );
    assert_eq!(p.depth().await, 1);

    // A route whose queue is gone: the broker returns the replay, and nothing leaves the
    // parking queue.
    p.peer.delete(&[&p.route]).await;
    let (ok, _, err) = run(&mut parked(&["replay", &p.route, "--all"])).await;
    assert!(
        !ok && err.contains("has no queue") && err.contains("d-1 is still parked"),
        "{err}"
    );
    assert_eq!(p.depth().await, 1);
    p.clean_up().await;
}

/// Not a test: figures for the README (`cargo test -p worker-kit-parked --features
/// integration --test parked -- --ignored measure_parked --nocapture`). How long `list`
/// takes over 1,000 parked messages, and how many replays per second `replay --all`
/// confirms (one at a time, each confirmed before its parked message is removed).
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_parked() {
    let texts: Vec<String> = (0..1000).map(|i| format!("m{i:04}")).collect();
    let messages: Vec<(Option<&str>, &str)> = texts.iter().map(|t| (None, t.as_str())).collect();
    let p = Parked::new("parked-measure", &messages).await;
    let started = std::time::Instant::now();
    let (ok, _, err) = run(&mut parked(&[
        "list", &p.route, "--limit", "1000", "--json",
    ]))
    .await;
    assert!(ok, "{err}");
    let listed = started.elapsed();
    let started = std::time::Instant::now();
    let (ok, _, err) = run(&mut parked(&["replay", &p.route, "--all"])).await;
    assert!(ok, "{err}");
    let replayed = started.elapsed();
    println!(
        "list of 1000: {:.2} s; replay of 1000: {:.2} s ({:.0} messages/s), process start and connect included",
        listed.as_secs_f64(),
        replayed.as_secs_f64(),
        1000.0 / replayed.as_secs_f64()
    );
    assert_eq!(p.peer.ready_count(&p.route).await, 1000);
    p.clean_up().await;
}
