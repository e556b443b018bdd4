//! Issue 25.7: the `METRICS_ADDR` listener is bounded like any listener on a network. A
//! client that sends its headers slowly, a request too large, and connections beyond the
//! cap are closed, and the listener keeps answering scrapes. (The limits are the kit's
//! constants: 5 s for the headers, 8 KiB per request, 32 connections.)

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use worker_kit::Runner;
use worker_kit::rpc::RpcWorker;

const MAX_CONNECTIONS: usize = 32;

async fn nothing() -> Result<(), worker_kit::ErrorReply> {
    Ok(())
}

/// Reads until the server closes the connection or `limit` passes; `None` on the latter.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

/// Whether `/livez` answers 200 on a connection of its own.
async fn livez(addr: std::net::SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    until_closed(&mut stream, Duration::from_secs(2))
        .await
        .is_some_and(|answer| answer.starts_with(b"HTTP/1.1 200"))
}

#[tokio::test]
async fn the_metrics_listener_closes_slow_large_and_surplus_connections() {
    let route = e2e::unique("metrics-listener");
    let mut config = e2e::config();
    config.metrics_addr = Some(([127, 0, 0, 1], 0).into());
    let running = e2e::start(
        Runner::new(
            "metrics-listener",
            Arc::new(config),
            e2e::broker("metrics-listener").await,
        )
        .register_worker(RpcWorker::new().route(&route, nothing)),
    )
    .await;
    let addr = running.metrics_addr().expect("METRICS_ADDR was set");

    // Headers that never end: closed after the header timeout.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut slow, Duration::from_secs(15)).await;
    assert!(
        answer.is_some(),
        "a client sending its headers slowly kept the connection for 15 s"
    );

    // A request larger than the limit is not read to the end and answered.
    let mut large = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(64 * 1024)
    );
    let _ = large.write_all(request.as_bytes()).await;
    let answer = until_closed(&mut large, Duration::from_secs(15))
        .await
        .expect("the large request's connection is closed");
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "a 64 KiB request was answered: {}",
        String::from_utf8_lossy(&answer[..answer.len().min(80)])
    );

    // Connections beyond the cap are closed as they come.
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut surplus = TcpStream::connect(addr).await.unwrap();
    assert!(
        until_closed(&mut surplus, Duration::from_secs(3))
            .await
            .is_some(),
        "a connection beyond {MAX_CONNECTIONS} was kept open"
    );
    drop(idle);
    // Once they are gone, scrapes are answered again.
    e2e::wait_until(
        Duration::from_secs(10),
        "/livez answers again",
        || async move { livez(addr).await },
    )
    .await;

    running.stop().await.unwrap();
    e2e::RawPeer::connect().await.delete(&[&route]).await;
}
