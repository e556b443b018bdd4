//! Retries that wait in the broker: a failed message's copy goes to one of the route's delay
//! queues (`<route>.retry.<ms>`), which sends it back to the route when its time is up; a
//! permanent error is parked at once. Timings are never asserted: what proves the wait is
//! the copy seen in a delay queue and the broker's `x-death` record of where the copy
//! expired.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use e2e::{RawPeer, gzip, unique, wait_until};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::Mutex;
use worker_kit::queue::{QueueType, QueueWorker, RetryDelay, parking_queue};
use worker_kit::{ErrorReply, Meta, Payload, State};

/// One attempt as the handler saw it: its retry count and the queues the broker says the
/// message expired from (its `x-death` record), newest first.
type Attempt = (u32, Vec<String>);

#[derive(Clone, Default)]
struct Attempts {
    seen: Arc<Mutex<Vec<Attempt>>>,
    /// Attempts that still fail before the handler succeeds.
    fail_first: Arc<AtomicU32>,
}

impl Attempts {
    async fn len(&self) -> usize {
        self.seen.lock().await.len()
    }
}

/// The queues of `headers`' `x-death` entries whose reason is `expired`.
fn expired_from(headers: &FieldTable) -> Vec<String> {
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return Vec::new();
    };
    deaths
        .as_slice()
        .iter()
        .filter_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .filter(|t| text(t.inner().get("reason")) == "expired")
        .map(|t| text(t.inner().get("queue")))
        .collect()
}

fn text(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        _ => String::new(),
    }
}

async fn flaky(
    State(attempts): State<Attempts>,
    meta: Meta,
    Payload(what): Payload<String>,
) -> Result<(), ErrorReply> {
    attempts
        .seen
        .lock()
        .await
        .push((meta.retry_count, expired_from(&meta.headers)));
    match what.as_str() {
        "permanent" => Err(ErrorReply::not_found("no such customer").permanent()),
        "always-fail" => Err(ErrorReply::new("Broken", "this message always fails")),
        _ if attempts.fail_first.load(Ordering::SeqCst) > 0 => {
            attempts.fail_first.fetch_sub(1, Ordering::SeqCst);
            Err(ErrorReply::unavailable("not yet"))
        }
        _ => Ok(()),
    }
}

fn persistent() -> lapin::BasicProperties {
    lapin::BasicProperties::default().with_delivery_mode(2)
}

fn body(text: &str) -> Vec<u8> {
    gzip(serde_json::json!({ "data": text }).to_string().as_bytes())
}

/// The names retry `retry` of `route` may wait in.
fn step(route: &str, delay: RetryDelay, retry: u32) -> Vec<String> {
    delay
        .choices_ms(retry)
        .into_iter()
        .map(|ms| worker_kit::queue::delay_queue(route, ms))
        .collect()
}

/// Copies waiting in any of `queues` (those not declared yet hold none).
async fn waiting(peer: &RawPeer, queues: &[String]) -> u32 {
    let mut n = 0;
    for q in queues {
        n += peer.try_counts(q).await.map_or(0, |(ready, _)| ready);
    }
    n
}

/// `QUEUE_MAX_RETRIES=3` with a first delay of 200 ms: the message is tried four times,
/// each retry after waiting in the delay queue of its step (200, 400, 800 ms, less
/// jitter), then parked with the retry count and the copy rules kept.
#[tokio::test]
async fn retries_wait_in_delay_queues_then_the_message_is_parked() {
    let route = unique("delayed");
    let delay = RetryDelay::new(Duration::from_millis(200), Duration::from_secs(10));
    let attempts = Attempts::default();
    let running = e2e::start(
        e2e::runner("delayed").await.register_worker(
            QueueWorker::new()
                .max_retries(3)
                .retry_delay(&route, delay.first(), delay.max())
                .route(&route, flaky)
                .with_state(attempts.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(&route, &body("always-fail"), persistent())
        .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(20), "the message parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.try_counts(dead).await.is_ok_and(|(n, _)| n == 1) }
    })
    .await;
    running.stop().await.unwrap();

    let seen = attempts.seen.lock().await.clone();
    let counts: Vec<u32> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(counts, vec![0, 1, 2, 3], "the attempts, in order");
    assert!(seen[0].1.is_empty(), "the original never waited: {seen:?}");
    for (retry, expired) in seen.iter().skip(1) {
        let queues = step(&route, delay, *retry);
        assert!(
            expired.first().is_some_and(|q| queues.contains(q)),
            "retry {retry} came back from one of {queues:?}; x-death says {expired:?}"
        );
    }
    let parked = peer.get(&dead).await.expect("the parked message");
    let headers = parked.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("x-retry-count"),
        Some(&AMQPValue::LongLongInt(3))
    );
    assert_eq!(text(headers.inner().get("x-error-type")), "Broken");
    assert_eq!(parked.delivery.properties.expiration(), &None);
    assert_eq!(
        parked.delivery.data,
        body("always-fail"),
        "the body untouched"
    );
    assert_eq!(peer.ready_count(&route).await, 0, "nothing loops");
    peer.delete_routes(&[&route]).await;
}

/// A retry waiting in its delay queue is the broker's: the worker stops while the copy
/// waits, the copy comes back to the route with nobody serving it, and the next worker
/// gets it as the first retry.
#[tokio::test]
async fn a_waiting_retry_survives_a_restart() {
    let route = unique("delayed-restart");
    // Long enough to see the copy in the delay queue before it expires.
    let delay = RetryDelay::new(Duration::from_secs(3), Duration::from_secs(3));
    let attempts = Attempts::default();
    attempts.fail_first.store(1, Ordering::SeqCst);
    let worker = || {
        QueueWorker::new()
            .max_retries(3)
            .retry_delay(&route, delay.first(), delay.max())
            .route(&route, flaky)
            .with_state(attempts.clone())
    };
    let running = e2e::start(
        e2e::runner("delayed-restart")
            .await
            .register_worker(worker()),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(&route, &body("flaky"), persistent()).await;
    let first_wait = step(&route, delay, 1);
    wait_until(
        Duration::from_secs(10),
        "the retry copy waiting in a delay queue",
        || {
            let (peer, queues) = (&peer, &first_wait);
            async move { waiting(peer, queues).await == 1 }
        },
    )
    .await;
    assert_eq!(attempts.len().await, 1);
    running.stop().await.unwrap();

    wait_until(
        Duration::from_secs(20),
        "the copy back in the route queue, nobody serving it",
        || {
            let (peer, route) = (&peer, &route);
            async move { peer.counts(route).await == (1, 0) }
        },
    )
    .await;
    assert_eq!(waiting(&peer, &first_wait).await, 0);
    assert_eq!(attempts.len().await, 1, "no attempt while stopped");

    let running = e2e::start(
        e2e::runner("delayed-restart")
            .await
            .register_worker(worker()),
    )
    .await;
    wait_until(Duration::from_secs(10), "the retry worked", || {
        let attempts = attempts.clone();
        async move { attempts.len().await == 2 }
    })
    .await;
    running.stop().await.unwrap();
    let seen = attempts.seen.lock().await.clone();
    assert_eq!(seen[1].0, 1, "the first retry");
    assert!(
        seen[1].1.first().is_some_and(|q| first_wait.contains(q)),
        "it waited in a delay queue: {seen:?}"
    );
    assert_eq!(peer.ready_count(&parking_queue(&route)).await, 0);
    peer.delete_routes(&[&route]).await;
}

/// A permanent error parks the message at its first failure: no retry, no wait.
#[tokio::test]
async fn a_permanent_error_is_parked_at_once() {
    let route = unique("permanent");
    let delay = RetryDelay::new(Duration::from_millis(200), Duration::from_secs(1));
    let attempts = Attempts::default();
    let running = e2e::start(
        e2e::runner("permanent").await.register_worker(
            QueueWorker::new()
                .max_retries(3)
                .retry_delay(&route, delay.first(), delay.max())
                .route(&route, flaky)
                .with_state(attempts.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(&route, &body("permanent"), persistent()).await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(20), "the message parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.try_counts(dead).await.is_ok_and(|(n, _)| n == 1) }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(attempts.len().await, 1, "one attempt, no retry");
    let parked = peer.get(&dead).await.expect("the parked message");
    let headers = parked.delivery.properties.headers().clone().unwrap();
    assert_eq!(text(headers.inner().get("x-error-type")), "NotFound");
    assert_eq!(
        text(headers.inner().get("x-error-message")),
        "no such customer"
    );
    assert!(
        !headers.inner().contains_key("x-retry-count"),
        "no retry spent: {headers:?}"
    );
    for q in delay.queues(&route, 3) {
        assert!(!peer.exists(&q).await, "{q} was never needed");
    }
    peer.delete_routes(&[&route]).await;
}

/// A quorum route's retries wait in quorum delay queues (a retry survives a node as the
/// message it copies would), and come back to the route as on a classic one.
#[tokio::test]
async fn a_quorum_route_waits_in_quorum_delay_queues() {
    let route = unique("delayed-quorum");
    let delay = RetryDelay::new(Duration::from_millis(100), Duration::from_secs(1));
    let attempts = Attempts::default();
    let running = e2e::start(
        e2e::runner("delayed-quorum").await.register_worker(
            QueueWorker::new()
                .max_retries(1)
                .retry_delay(&route, delay.first(), delay.max())
                .queue_type(&route, QueueType::Quorum)
                .route(&route, flaky)
                .with_state(attempts.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.publish(&route, &body("always-fail"), persistent())
        .await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(20), "the message parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.try_counts(dead).await.is_ok_and(|(n, _)| n == 1) }
    })
    .await;
    running.stop().await.unwrap();
    let seen = attempts.seen.lock().await.clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let used = seen[1].1.first().cloned().unwrap_or_default();
    assert!(step(&route, delay, 1).contains(&used), "{seen:?}");
    // RabbitMQ accepts a declaration naming the quorum type only for a quorum queue.
    let ms: i64 = used.rsplit('.').next().unwrap().parse().unwrap();
    let mut quorum_args = FieldTable::default();
    for (k, v) in [
        ("x-queue-type", AMQPValue::LongString("quorum".into())),
        ("x-message-ttl", AMQPValue::LongLongInt(ms)),
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(route.as_str().into()),
        ),
        (
            "x-dead-letter-strategy",
            AMQPValue::LongString("at-least-once".into()),
        ),
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
    ] {
        quorum_args.insert(k.into(), v);
    }
    let mut classic_args = quorum_args.clone();
    classic_args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    assert_eq!(
        peer.declare_error(&used, true, quorum_args).await,
        None,
        "{used} is quorum"
    );
    assert!(
        peer.declare_error(&used, true, classic_args)
            .await
            .is_some_and(|e| e.contains("PRECONDITION_FAILED")),
        "{used} refuses the classic type"
    );
    peer.delete_routes(&[&route]).await;
}

/// A `CC` or `BCC` header makes the broker route a message to more queues than its routing
/// key names. A publisher who sets one must not get the service to send its retry and
/// parked copies — published under the service's own `user_id` — into someone else's queue.
#[tokio::test]
async fn copies_are_not_routed_by_the_senders_cc_headers() {
    let route = unique("delayed-cc");
    let victim = unique("delayed-cc-victim");
    let attempts = Attempts::default();
    let running = e2e::start(
        e2e::runner("delayed-cc").await.register_worker(
            QueueWorker::new()
                .max_retries(1)
                .retry_delay(&route, Duration::from_millis(50), Duration::from_millis(50))
                .route(&route, flaky)
                .with_state(attempts.clone()),
        ),
    )
    .await;
    let peer = RawPeer::connect().await;
    peer.declare_work_queue(&victim).await;
    let routed = |name: &str| {
        let mut h = FieldTable::default();
        h.insert(
            name.into(),
            AMQPValue::FieldArray(vec![AMQPValue::LongString(victim.as_str().into())].into()),
        );
        h
    };
    for name in ["CC", "BCC"] {
        peer.publish(
            &route,
            &body("always-fail"),
            persistent().with_headers(routed(name)),
        )
        .await;
    }
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(20), "both messages parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.try_counts(dead).await.is_ok_and(|(n, _)| n == 2) }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(attempts.len().await, 4, "each message tried twice");
    // The two originals went there too: the sender's own publish, routed by its headers.
    assert_eq!(
        peer.ready_count(&victim).await,
        2,
        "only the sender's own messages reached the queue its CC/BCC named, no retry or parked copy"
    );
    for _ in 0..2 {
        let parked = peer.get(&dead).await.expect("a parked message");
        let headers = parked.delivery.properties.headers().clone().unwrap();
        assert!(
            !headers.inner().contains_key("CC") && !headers.inner().contains_key("BCC"),
            "the parked copy keeps no routing header: {headers:?}"
        );
    }
    peer.delete(&[&victim]).await;
    peer.delete_routes(&[&route]).await;
}
