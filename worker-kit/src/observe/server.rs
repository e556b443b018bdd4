//! The HTTP listener on `METRICS_ADDR`: `GET /metrics` (OpenMetrics when the scraper asks
//! for it, as Prometheus does, else the Prometheus text format), `GET /livez`
//! (the runtime answers) and `GET /readyz` (200 when ready, 503 with the reasons). One
//! small hyper HTTP/1 server; it runs until the Runner has stopped, so a drain shows on
//! `/readyz` while it lasts.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::exposition::{OPENMETRICS, PROMETHEUS_TEXT, to_prometheus_text, wants_openmetrics};
use super::{Health, Metrics};
use crate::Error;

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
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        debug!(error = %e, "metrics listener: accept failed");
                        continue;
                    }
                },
            };
            let (metrics, health, stop) = (metrics.clone(), health.clone(), stop.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let reply = answer(&req, &metrics, &health);
                    async move { Ok::<_, Infallible>(reply) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    () = stop.cancelled() => {}
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
