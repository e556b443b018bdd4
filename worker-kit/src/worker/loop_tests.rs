//! The consume loop against a scripted broker under Tokio's paused clock: the races
//! between a pause, a lost connection and a stop, played in a chosen order.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::consume::{Intake, Processor, requeue_after_a_pause, run_on};
use super::handoff::{WorkerContext, WorkerKind};
use super::scripted::{ScriptedChannel, ScriptedLink};
use crate::Error;
use crate::amqp::Broker;
use crate::backoff::Pauses;
use crate::config::{Config, PausePolicy};
use crate::handler::Outcome;
use crate::handler::routes::BoundHandler;
use crate::observe::disposition::Disposition;

/// A work-queue-like processor on the scripted broker: declaring is scripted
/// (`declare`), handling acks (or, for `hang`, never ends).
struct TestProcessor {
    declare: Box<dyn Fn(usize) -> Result<(), lapin::Error> + Send + Sync>,
    declared: AtomicUsize,
    hang: bool,
    started: AtomicUsize,
    handled: AtomicUsize,
    /// Handlers dropped before they finished (aborted by the drain deadline).
    aborted: Arc<AtomicUsize>,
}

impl TestProcessor {
    fn new() -> Self {
        Self {
            declare: Box::new(|_| Ok(())),
            declared: AtomicUsize::new(0),
            hang: false,
            started: AtomicUsize::new(0),
            handled: AtomicUsize::new(0),
            aborted: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Counts a handler dropped before it finished.
struct Unfinished(Arc<AtomicUsize>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Processor<ScriptedChannel> for TestProcessor {
    fn kind(&self) -> WorkerKind {
        WorkerKind::Queue
    }

    fn requeue_after_panic(&self) -> bool {
        true
    }

    async fn declare(&self, _channel: &ScriptedChannel, _route: &str) -> Result<(), lapin::Error> {
        let n = self.declared.fetch_add(1, Ordering::SeqCst);
        (self.declare)(n)
    }

    async fn handle(
        &self,
        _channel: &ScriptedChannel,
        delivery: Delivery,
        _route: &Arc<str>,
        _handler: BoundHandler,
    ) -> Disposition {
        self.started.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            let unfinished = Unfinished(self.aborted.clone());
            std::future::pending::<()>().await;
            std::mem::forget(unfinished);
        }
        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        self.handled.fetch_add(1, Ordering::SeqCst);
        Disposition::Ok
    }
}

/// What the test holds of a running loop.
struct Running {
    shutdown: CancellationToken,
    ready: mpsc::UnboundedReceiver<Result<String, Error>>,
    paused: watch::Sender<bool>,
    task: JoinHandle<Result<(), Error>>,
}

fn config() -> Config {
    Config {
        pause_on_db_outage: PausePolicy::Queue,
        connect_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// Runs the loop for `routes` on `link` with `processor`.
fn start(
    link: &Arc<ScriptedLink>,
    processor: &Arc<TestProcessor>,
    config: Config,
    routes: &[&str],
) -> Running {
    let broker = Broker::offline(&config);
    let shutdown = CancellationToken::new();
    let (ready_tx, ready) = mpsc::unbounded_channel();
    let (paused, paused_rx) = watch::channel(false);
    let ctx = WorkerContext {
        health: crate::observe::Health::new(broker.clone(), shutdown.clone()),
        budget: crate::handler::budget::DecodeBudget::new(config.decode_budget_bytes),
        broker,
        config: Arc::new(config),
        shutdown: shutdown.clone(),
        ready: ready_tx,
        paused: paused_rx,
        service: "svc".into(),
        served: Arc::default(),
    };
    let routes = routes
        .iter()
        .map(|r| {
            let h = BoundHandler::new(|_| Box::pin(async { Outcome::Ok(Vec::new()) }));
            (Arc::from(*r), h)
        })
        .collect();
    let intake = Intake {
        prefetch: 4,
        concurrency: 4,
    };
    let (link, processor) = (link.clone(), processor.clone());
    let task = tokio::spawn(async move { run_on(&*link, ctx, processor, routes, intake).await });
    Running {
        shutdown,
        ready,
        paused,
        task,
    }
}

/// Waits until `cond` holds, for at most a minute of (paused) time.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The loop's readiness report.
async fn ready(running: &mut Running) -> Result<String, Error> {
    tokio::time::timeout(Duration::from_secs(60), running.ready.recv())
        .await
        .expect("the loop reports on its readiness")
        .expect("the ready channel stays open")
}

fn delivery(tag: u64) -> Delivery {
    Delivery::mock(tag, "".into(), "q".into(), false, b"{}".to_vec())
}

/// Delivers one message to each of `routes` and waits until the loop handled them: the
/// loop takes one event at a time, so everything it read before is dealt with.
async fn round_trip(link: &ScriptedLink, processor: &TestProcessor, routes: &[&str]) {
    let before = processor.handled.load(Ordering::SeqCst);
    for (i, r) in routes.iter().enumerate() {
        link.deliver(r, delivery(i as u64 + 1));
    }
    until("the deliveries are handled", || {
        processor.handled.load(Ordering::SeqCst) == before + routes.len()
    })
    .await;
}

async fn stop(running: Running) -> Result<(), Error> {
    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), running.task)
        .await
        .expect("the loop stops")
        .expect("the loop does not panic")
}

#[tokio::test(start_paused = true)]
async fn a_consumer_cancelled_by_a_pause_and_ending_after_the_resume_is_not_replaced() {
    let routes = ["a", "b"];
    let link = ScriptedLink::new(true);
    link.hold_cancelled_streams();
    let processor = Arc::new(TestProcessor::new());
    let mut running = start(&link, &processor, config(), &routes);
    ready(&mut running).await.expect("ready");
    for round in 1..=3 {
        running.paused.send_replace(true);
        until("the pause cancelled every consumer", || {
            routes.iter().all(|r| link.live(r) == 0)
        })
        .await;
        running.paused.send_replace(false);
        until("the resume consumed every route", || {
            routes.iter().all(|r| link.live(r) == 1)
        })
        .await;
        // The cancelled consumers' streams end only now, after the resume.
        let ends_before = link.ends_read();
        assert_eq!(link.end_cancelled(), routes.len());
        until("the loop read the cancelled streams' ends", || {
            link.ends_read() == ends_before + routes.len()
        })
        .await;
        round_trip(&link, &processor, &routes).await;
        for r in routes {
            assert_eq!(
                link.live(r),
                1,
                "round {round}: route {r} must have exactly one consumer"
            );
        }
    }
    stop(running).await.expect("stopped");
}

#[tokio::test(start_paused = true)]
async fn the_broker_lost_while_declaring_before_ready_is_retried_within_the_connect_timeout() {
    let routes = ["a", "b"];
    let link = ScriptedLink::new(true);
    let mut processor = TestProcessor::new();
    let dropper = link.clone();
    // The second declaration (route `b` of the first session) loses the connection.
    processor.declare = Box::new(move |n| {
        if n == 1 {
            dropper.lose_connection();
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the broker connection was lost while declaring",
            )
            .into());
        }
        Ok(())
    });
    let processor = Arc::new(processor);
    let config = config();
    let connect_timeout = config.connect_timeout;
    let started = Instant::now();
    let mut running = start(&link, &processor, config, &routes);
    until("the connection is lost mid-declare", || !link.is_up()).await;
    link.reconnect();
    let said = ready(&mut running).await;
    assert!(
        said.is_ok(),
        "a blip before ready is retried, not a failed start: {said:?}"
    );
    assert!(started.elapsed() < connect_timeout);
    assert!(routes.iter().all(|r| link.live(r) == 1));
    stop(running).await.expect("stopped");
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_an_outage_returns_within_the_drain_and_close_bounds() {
    let link = ScriptedLink::new(true);
    let mut processor = TestProcessor::new();
    processor.hang = true;
    let processor = Arc::new(processor);
    let config = config();
    let bound = config.drain_timeout + config.connect_timeout;
    let mut running = start(&link, &processor, config, &["a"]);
    ready(&mut running).await.expect("ready");
    link.deliver("a", delivery(1));
    until("the handler runs", || {
        processor.started.load(Ordering::SeqCst) == 1
    })
    .await;
    link.lose_connection();
    until("the loop waits for a connection that does not come", || {
        link.connection_asked() == 2
    })
    .await;
    let stopping = Instant::now();
    let stopped = timeout_of(bound, stop(running)).await;
    assert!(
        stopped.is_some(),
        "stop must return within DRAIN_TIMEOUT_MS plus the close bound"
    );
    assert_eq!(
        processor.aborted.load(Ordering::SeqCst),
        1,
        "the handler still running at the drain deadline is aborted"
    );
    assert!(stopping.elapsed() <= bound);
}

#[tokio::test(start_paused = true)]
async fn a_stop_before_the_broker_was_ever_reached_returns_at_once() {
    let link = ScriptedLink::new(false);
    let processor = Arc::new(TestProcessor::new());
    let running = start(&link, &processor, config(), &["a"]);
    let stopping = Instant::now();
    assert!(
        timeout_of(Duration::from_secs(1), stop(running))
            .await
            .is_some()
    );
    assert!(stopping.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn reopening_after_a_failed_consumer_waits_a_growing_pause() {
    let link = ScriptedLink::new(true);
    link.fail_consumers();
    let processor = Arc::new(TestProcessor::new());
    let mut running = start(&link, &processor, config(), &["a"]);
    ready(&mut running).await.expect("ready");
    timeout_of(Duration::from_secs(60), link.opened(5))
        .await
        .expect("five sessions were opened");
    let opens = link.opens();
    let gaps: Vec<Duration> = opens.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(100),
        "the first reopen waits: {gaps:?}"
    );
    assert!(gaps[3] > gaps[0], "the pause grows: {gaps:?}");
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(4)),
        "and stays bounded: {gaps:?}"
    );
    stop(running).await.expect("stopped");
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_cannot_be_stored_is_requeued_after_a_growing_pause() {
    let requeues = Pauses::default();
    let mut waited = Vec::new();
    for tag in 1..=4 {
        let original = delivery(tag);
        let acker = original.acker.clone();
        let failed = Instant::now();
        requeue_after_a_pause(&requeues, &original, "the publishing connection is down").await;
        assert!(!acker.usable(), "the original went back to its queue");
        waited.push(failed.elapsed());
    }
    assert!(
        waited[0] >= Duration::from_millis(100),
        "not at once: {waited:?}"
    );
    assert!(waited[3] > waited[0], "the pause grows: {waited:?}");
    assert!(
        waited.iter().all(|w| *w <= Duration::from_secs(4)),
        "and stays bounded: {waited:?}"
    );
}

/// `fut`'s output, or `None` when `limit` passes first.
async fn timeout_of<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, fut).await.ok()
}
