use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::proxy::Proxy;
use e2e::{RawPeer, unique, wait_until};
use worker_kit::rpc::{CallError, CallOptions, RpcClient, RpcWorker};
use worker_kit::{Broker, ErrorReply, Payload, Runner, State};

fn proxied_url(proxy: &Proxy) -> String {
    format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port())
}

fn rabbit_addr() -> SocketAddr {
    "127.0.0.1:5672".parse().unwrap()
}

#[derive(Clone, Default)]
struct Slow {
    started: Arc<AtomicUsize>,
}

/// Blocks forever on `"block"`, echoes anything else.
async fn maybe_block(
    State(s): State<Slow>,
    Payload(v): Payload<String>,
) -> Result<String, ErrorReply> {
    if v == "block" {
        s.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    Ok(v)
}

/// Calls in flight when the connection drops fail at once with ConnectionLost; the
/// server and the client reconnect, redeclare and consume again, and later calls work.
#[tokio::test]
async fn calls_fail_fast_and_everything_recovers_when_the_broker_goes_away() {
    let _serial = crate::serial().await;
    let proxy = Proxy::start(rabbit_addr()).await;
    let url = proxied_url(&proxy);
    let route = unique("outage");
    let slow = Slow::default();
    let server_broker = Broker::connect(&url, "outage-server", Duration::from_secs(10))
        .await
        .unwrap();
    let running = Runner::new("outage", Arc::new(e2e::config()), server_broker)
        .register_worker(
            RpcWorker::new()
                .route(&route, maybe_block)
                .with_state(slow.clone()),
        )
        .start()
        .await
        .unwrap();
    let client_broker = Broker::connect(&url, "outage-client", Duration::from_secs(10))
        .await
        .unwrap();
    let client = RpcClient::new(&client_broker, &e2e::config())
        .await
        .unwrap();
    assert_eq!(
        client
            .call_route::<_, String>(&route, "hi", CallOptions::default())
            .await
            .unwrap(),
        "hi"
    );

    let calls: Vec<_> = (0..5)
        .map(|_| {
            let (c, r) = (client.clone(), route.clone());
            tokio::spawn(async move {
                c.call_route::<_, String>(&r, "block", CallOptions::default())
                    .await
            })
        })
        .collect();
    wait_until(Duration::from_secs(10), "5 calls in flight", || {
        let s = slow.clone();
        async move { s.started.load(Ordering::SeqCst) == 5 }
    })
    .await;

    proxy.cut().await;
    for call in calls {
        // Their timeout is 30 s; they must fail long before it.
        let result = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("a pending call fails at once when the connection drops")
            .unwrap();
        assert!(
            matches!(result, Err(CallError::ConnectionLost { .. })),
            "{result:?}"
        );
    }
    // While the broker is away, a call fails as ConnectionLost within its own deadline.
    let err = client
        .call_route::<_, String>(
            &route,
            "hi",
            CallOptions {
                timeout: Some(Duration::from_millis(500)),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::ConnectionLost { .. }), "{err:?}");

    proxy.restore();
    // Consumers back within 5 s of the broker coming back.
    wait_until(
        Duration::from_secs(5),
        "a call succeeds after the broker is back",
        || {
            let (c, r) = (client.clone(), route.clone());
            async move {
                c.call_route::<_, String>(
                    &r,
                    "again",
                    CallOptions {
                        timeout: Some(Duration::from_millis(400)),
                        ..CallOptions::default()
                    },
                )
                .await
                .is_ok_and(|v| v == "again")
            }
        },
    )
    .await;
    running.stop().await.unwrap();
    client_broker.close().await;
    RawPeer::connect().await.delete(&[&route]).await;
}

/// A queue deleted under a running worker is declared again and consumed again.
#[tokio::test]
async fn a_deleted_queue_is_redeclared_and_consumed_again() {
    let _serial = crate::serial().await;
    let route = unique("deleted");
    let running = e2e::start(
        e2e::runner("deleted").await.register_worker(
            RpcWorker::new()
                .route(&route, maybe_block)
                .with_state(Slow::default()),
        ),
    )
    .await;
    let client = RpcClient::new(&e2e::broker("client").await, &e2e::config())
        .await
        .unwrap();
    assert_eq!(
        client
            .call_route::<_, String>(&route, "one", CallOptions::default())
            .await
            .unwrap(),
        "one"
    );
    RawPeer::connect().await.delete(&[&route]).await;
    wait_until(Duration::from_secs(10), "the route answers again", || {
        let (c, r) = (client.clone(), route.clone());
        async move {
            c.call_route::<_, String>(
                &r,
                "two",
                CallOptions {
                    timeout: Some(Duration::from_millis(500)),
                    ..CallOptions::default()
                },
            )
            .await
            .is_ok_and(|v| v == "two")
        }
    })
    .await;
    running.stop().await.unwrap();
    RawPeer::connect().await.delete(&[&route]).await;
}

/// A publish while the broker is away waits for it within its timeout, then fails with a
/// clear error (never a silent drop); after the broker is back, publishing works again.
#[tokio::test]
async fn publishing_while_the_broker_is_away_fails_clearly_then_recovers() {
    let _serial = crate::serial().await;
    let proxy = Proxy::start(rabbit_addr()).await;
    let route = unique("away");
    let peer = RawPeer::connect().await;
    peer.declare_work_queue(&route).await;
    let broker = Broker::connect(
        &proxied_url(&proxy),
        "away-publisher",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let publisher =
        worker_kit::queue::QueuePublisher::new(&broker).with_timeout(Duration::from_millis(800));
    publisher.publish(&route, "before").await.unwrap();
    proxy.cut().await;
    let err = publisher.publish(&route, "during").await.unwrap_err();
    assert!(
        matches!(err, worker_kit::queue::PublishError::Unavailable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("broker unavailable"), "{err}");
    proxy.restore();
    wait_until(Duration::from_secs(10), "publishing works again", || {
        let (p, r) = (publisher.clone(), route.clone());
        async move { p.publish(&r, "after").await.is_ok() }
    })
    .await;
    broker.close().await;
    // "before" and at least one "after": nothing claimed stored was lost.
    assert!(peer.ready_count(&route).await >= 2);
    peer.delete(&[&route]).await;
}
