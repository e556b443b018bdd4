//! Issue 25.3: an RPC request whose attempts keep dying with their connection (a crash, an
//! OOM kill, a message that closes the channel) is answered with an error and dead-lettered
//! to `rpc.dlx` after `RPC_MAX_REDELIVERIES`, never run forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, connections, gzip, reply_json, unique, wait_until};
use lapin::BasicProperties;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use worker_kit::rpc::{RPC_DLX, RpcWorker};
use worker_kit::{ErrorReply, Payload, Runner, State};

/// A handler that never finishes on its own: each attempt lasts until the test kills the
/// connection under it.
#[derive(Clone)]
struct Stuck {
    runs: Arc<AtomicUsize>,
    started: mpsc::UnboundedSender<()>,
    release: CancellationToken,
}

async fn stuck(
    State(s): State<Stuck>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<(), ErrorReply> {
    s.runs.fetch_add(1, Ordering::SeqCst);
    let _ = s.started.send(());
    s.release.cancelled().await;
    Ok(())
}

#[tokio::test]
async fn a_request_whose_attempts_keep_dying_is_answered_and_dead_lettered() {
    const MAX_REDELIVERIES: usize = 2;
    let route = unique("redelivered");
    let connection_name = unique("redelivered-service");
    let (started, mut attempts) = mpsc::unbounded_channel();
    let state = Stuck {
        runs: Arc::new(AtomicUsize::new(0)),
        started,
        release: CancellationToken::new(),
    };
    let mut config = e2e::config();
    config.rpc_max_redeliveries = u32::try_from(MAX_REDELIVERIES).unwrap();
    let running = e2e::start(
        Runner::new(
            "redelivered",
            Arc::new(config),
            e2e::broker(&connection_name).await,
        )
        .register_worker(
            RpcWorker::new()
                .route(&route, stuck)
                .with_state(state.clone()),
        ),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    // What the route dead-letters, caught by a queue of the test's own.
    let dead_letters = peer.catch(RPC_DLX, "").await;
    let cid = unique("poison");
    let props = BasicProperties::default()
        .with_reply_to(peer.reply_to().into())
        .with_correlation_id(cid.as_str().into());
    peer.publish(&route, &gzip(br#"{"data": 1}"#), props).await;

    let reply = loop {
        tokio::select! {
            attempt = tokio::time::timeout(Duration::from_secs(20), attempts.recv()) => {
                attempt.expect("an attempt or a reply within 20 s").expect("handler alive");
                let runs = state.runs.load(Ordering::SeqCst);
                assert!(
                    runs <= MAX_REDELIVERIES + 1,
                    "the request loops: attempt {runs} with RPC_MAX_REDELIVERIES={MAX_REDELIVERIES}"
                );
                // The attempt dies with the service's connection, as in a crash.
                let mut pids = Vec::new();
                wait_until(Duration::from_secs(10), "the service's connection is listed", || {
                    pids = connections::named(&connection_name);
                    let found = !pids.is_empty();
                    async move { found }
                })
                .await;
                for pid in &pids {
                    connections::close(pid, "test: the attempt dies with its connection");
                }
            }
            reply = peer.next_reply() => break reply,
        }
    };
    assert_eq!(
        reply.properties.correlation_id().as_ref().unwrap().as_str(),
        cid
    );
    assert_eq!(
        reply.properties.kind().as_ref().map(|t| t.as_str()),
        Some("error"),
        "the handler did not run for it"
    );
    let v = reply_json(&reply);
    assert_eq!(v["error"]["type"], json!("Redelivered"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RPC_MAX_REDELIVERIES"),
        "{v}"
    );
    assert_eq!(state.runs.load(Ordering::SeqCst), MAX_REDELIVERIES + 1);

    wait_until(
        Duration::from_secs(10),
        "the request is dead-lettered",
        || {
            let (peer, queue, cid) = (&peer, dead_letters.clone(), cid.clone());
            async move {
                // Other tests' dead letters may pass through too: look for this one.
                while let Some(m) = peer.get(&queue).await {
                    if m.properties.correlation_id().as_ref().map(|c| c.as_str()) == Some(&cid) {
                        return true;
                    }
                }
                false
            }
        },
    )
    .await;

    state.release.cancel();
    running.stop().await.unwrap();
    assert_eq!(peer.ready_count(&route).await, 0, "nothing requeued");
    peer.delete(&[&route, &dead_letters]).await;
}
