//! The broker connection's time limits: a connect attempt and a close never outlast
//! their budget, whatever the peer does.

use std::time::Duration;

use e2e::proxy::Proxy;
use worker_kit::Broker;

/// A host that accepts the TCP connection and then says nothing (as one behind a
/// firewall that drops packets can): the connect gives up after `AMQP_CONNECT_TIMEOUT_MS`,
/// not after the OS's TCP timeout or never.
#[tokio::test]
async fn a_connect_to_a_silent_host_gives_up_in_time() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("amqp://guest:guest@{}/%2f", silent.local_addr().unwrap());
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        Broker::connect(&url, "silent", Duration::from_secs(1)),
    )
    .await
    .expect("the connect gives up within its own time limit");
    let err = r.expect_err("nothing answered");
    assert!(err.to_string().contains("AMQP_CONNECT_TIMEOUT_MS"), "{err}");
    drop(silent);
}

/// Closing a connection whose peer went silent (half-open socket) does not hang the
/// shutdown.
#[tokio::test]
async fn closing_a_half_open_connection_does_not_hang() {
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = e2e::amqp_url().replacen("127.0.0.1:5672", &format!("127.0.0.1:{}", proxy.port()), 1);
    assert_ne!(url, e2e::amqp_url(), "the URL points at the proxy");
    let broker = Broker::connect(&url, "half-open", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(broker.connection_now().is_some());
    proxy.freeze();
    tokio::time::timeout(Duration::from_secs(10), broker.close())
        .await
        .expect("close gives up on a silent peer");
    assert!(broker.is_closed());
}
