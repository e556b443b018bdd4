//! The kit itself: `RpcWorker` behind a `Runner`, called by `RpcClient`; a `QueueWorker`
//! fed by `QueuePublisher`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use worker_kit::config::Config;
use worker_kit::queue::{QueuePublisher, QueueWorker};
use worker_kit::rpc::{CallOptions, RpcClient, RpcWorker};
use worker_kit::runner::Running;
use worker_kit::{Broker, ErrorReply, Payload, Runner, State};

/// The echo handler: hands the request's `data` back without parsing it into a tree.
async fn echo(Payload(v): Payload<Box<RawValue>>) -> Result<Box<RawValue>, ErrorReply> {
    Ok(v)
}

pub(crate) fn config(url: &str) -> Config {
    let mut c = Config::default();
    c.amqp_url = url.parse().expect("--amqp-url parses");
    c.drain_timeout = Duration::from_secs(10);
    c.connect_timeout = Duration::from_secs(10);
    c
}

pub(crate) async fn broker(url: &str, name: &str) -> anyhow::Result<Broker> {
    Broker::connect(url, name, Duration::from_secs(10))
        .await
        .context("connecting the kit's broker")
}

/// Starts an `RpcWorker` answering `route` with [`echo`].
pub(crate) async fn echo_server(url: &str, route: &str) -> anyhow::Result<Running> {
    echo_server_with(route, config(url)).await
}

/// As [`echo_server`], with `config` (e.g. with `METRICS_ADDR` set: metrics recorded and
/// served).
pub(crate) async fn echo_server_with(route: &str, config: Config) -> anyhow::Result<Running> {
    let b = broker(&config.amqp_url, "bench kit server").await?;
    Runner::new("bench", Arc::new(config), b)
        .register_worker(RpcWorker::new().route(route, echo))
        .start()
        .await
        .context("starting the kit's echo server")
}

pub(crate) async fn client(url: &str) -> anyhow::Result<RpcClient> {
    client_with(&config(url)).await
}

/// As [`client`], with `config`.
pub(crate) async fn client_with(config: &Config) -> anyhow::Result<RpcClient> {
    let b = broker(&config.amqp_url, "bench kit client").await?;
    RpcClient::new(&b, config)
        .await
        .context("starting the kit's client")
}

/// One call of `route` with `payload` (a JSON value), checking the echo came back whole:
/// byte for byte from the kit, as equal JSON from peers that reformat it (Python's
/// `json.dumps` adds spaces).
pub(crate) async fn call(
    client: &RpcClient,
    route: &str,
    payload: &RawValue,
    exact: bool,
) -> anyhow::Result<()> {
    let back = client
        .call_raw(route, payload, CallOptions::default())
        .await?;
    let same = if exact {
        back.get() == payload.get()
    } else {
        serde_json::from_str::<serde_json::Value>(back.get())?
            == serde_json::from_str::<serde_json::Value>(payload.get())?
    };
    if !same {
        return Err(anyhow!(
            "echo came back changed: {} bytes instead of {}",
            back.get().len(),
            payload.get().len()
        ));
    }
    Ok(())
}

async fn count(
    State(s): State<Arc<(AtomicUsize, usize, Notify)>>,
    Payload(_): Payload<Box<RawValue>>,
) -> Result<(), ErrorReply> {
    if s.0.fetch_add(1, Ordering::Relaxed) + 1 == s.1 {
        s.2.notify_one();
    }
    Ok(())
}

/// Publishes `n` persistent, confirmed messages through `QueuePublisher` (`in_flight`
/// confirms outstanding at once) to a `QueueWorker` that acks each; resolves when the
/// worker has handled all `n`. Latencies are the publish confirms.
pub(crate) async fn work_queue(
    url: &str,
    route: &str,
    n: usize,
    in_flight: usize,
    payload: &RawValue,
    limit: Duration,
) -> anyhow::Result<crate::measure::Run> {
    let state = Arc::new((AtomicUsize::new(0), n, Notify::new()));
    let b = broker(url, "bench kit queue worker").await?;
    let running = Runner::new("bench", Arc::new(config(url)), b)
        .register_worker(
            QueueWorker::new()
                .route(route, count)
                .with_state(state.clone()),
        )
        .start()
        .await
        .context("starting the kit's queue worker")?;
    let pb = broker(url, "bench kit publisher").await?;
    let publisher = QueuePublisher::new(&pb);
    let started = std::time::Instant::now();
    let finished = state.2.notified();
    let p = &publisher;
    let published = crate::measure::drive(n, in_flight, limit, |_| async move {
        p.publish(route, payload).await?;
        Ok(())
    })
    .await;
    let result = match published {
        Ok(run) => match tokio::time::timeout(limit, finished).await {
            Ok(()) => Ok(crate::measure::Run {
                latencies: run.latencies,
                elapsed: started.elapsed(),
            }),
            Err(_) => Err(anyhow!(
                "the worker handled {} of {n} messages within {limit:?}",
                state.0.load(Ordering::Relaxed)
            )),
        },
        Err(e) => Err(e),
    };
    let stopped = running.stop().await;
    if let Some(conn) = pb.connection_now() {
        let dead = worker_kit::queue::parking_queue(route);
        crate::lean::delete_queues(&conn, &[route, &dead]).await;
    }
    pb.close().await;
    stopped.context("stopping the queue worker")?;
    result
}

/// `GET /metrics` from a kit process's `METRICS_ADDR` listener.
pub(crate) async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    anyhow::ensure!(
        body.starts_with("HTTP/1.0 200"),
        "scrape answered: {body:.80}"
    );
    Ok(body)
}
