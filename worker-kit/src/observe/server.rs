//! The HTTP listener on `METRICS_ADDR`: `GET /metrics` (OpenMetrics when the scraper asks
//! for it, as Prometheus does, else the Prometheus text format), `GET /livez`
//! (the runtime answers) and `GET /readyz` (200 when ready, 503 with the reasons). One
//! small hyper HTTP/1 server; it runs until the Runner has stopped, so a drain shows on
//! `/readyz` while it lasts.
//!
//! Whoever can reach the port can talk to it (deploy/ admits only the monitoring namespace),
//! so it is bounded like any listener on a network (issue 25.7): a request's headers must
//! arrive within `HEADER_READ_TIMEOUT` (5 s) and fit `MAX_REQUEST_BYTES` (8 KiB), a connection lives at
//! most `CONNECTION_LIFETIME` (30 s) (a scraper opens another), at most `MAX_CONNECTIONS` (32) are open
//! at once (more are closed as they come), and a failed `accept` (out of file descriptors)
//! pauses the loop for `ACCEPT_PAUSE` (100 ms) instead of spinning on it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::exposition::{OPENMETRICS, PROMETHEUS_TEXT, to_prometheus_text, wants_openmetrics};
use super::{Health, Metrics};
use crate::Error;

/// How long a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may stay open, idle or not.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Most connections open at once; a scraper and a probe or two need a handful.
pub(crate) const MAX_CONNECTIONS: usize = 32;

/// Largest request (line and headers) read; a scrape's is a few hundred bytes. hyper's
/// smallest read buffer.
pub(crate) const MAX_REQUEST_BYTES: usize = 8192;

/// How long the accept loop waits after a failed `accept` before the next.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Listens on `addr` and serves until `stop` is cancelled; returns the bound address
/// (port `0` picks a free one).
///
/// # Errors
///
/// [`Error::Config`] when `addr` cannot be listened on.
pub(crate) async fn start(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    stop: CancellationToken,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("METRICS_ADDR={addr}: cannot listen: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("METRICS_ADDR={addr}: {e}")))?;
    info!(addr = %bound, "serving /metrics, /livez and /readyz");
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, typically: accepting again at once would
                        // fail again at once, and spin a core.
                        warn!(error = %e, pause_ms = ACCEPT_PAUSE.as_millis() as u64, "metrics listener: accept failed; pausing");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                        }
                    }
                },
            };
            let Ok(slot) = open.clone().try_acquire_owned() else {
                debug!(
                    max = MAX_CONNECTIONS,
                    "metrics listener: too many connections; closing the new one"
                );
                drop(stream);
                continue;
            };
            let (metrics, health, stop) = (metrics.clone(), health.clone(), stop.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let reply = answer(&req, &metrics, &health);
                    async move { Ok::<_, Infallible>(reply) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_REQUEST_BYTES)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(CONNECTION_LIFETIME) => {
                        debug!("metrics listener: connection open too long; closing it");
                    }
                    r = conn => if let Err(e) = r {
                        debug!(error = %e, "metrics listener: connection failed");
                    },
                }
            });
        }
    });
    Ok(bound)
}

fn answer(req: &Request<Incoming>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let (kind, body) = if wants_openmetrics(accept) {
                (OPENMETRICS, metrics.encode())
            } else {
                (PROMETHEUS_TEXT, to_prometheus_text(&metrics.encode()))
            };
            Response::builder()
                .header(header::CONTENT_TYPE, kind)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, String::new()))
        }
        "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match health.readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /livez, /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
