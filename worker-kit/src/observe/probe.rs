//! `SERVICE healthcheck [readyz|livez]`: asks the process's own listener (`METRICS_ADDR`)
//! and exits 0 when it answers 200. A container health check runs it, so the image needs no
//! HTTP client of its own (curl, wget) to be checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// How long the probe waits for the whole answer.
const LIMIT: Duration = Duration::from_secs(3);

/// Runs the probe for `service` against `path` (`readyz` or `livez`).
pub(crate) fn run(service: &str, path: &str) -> ExitCode {
    if !matches!(path, "readyz" | "livez") {
        eprintln!("{service}: healthcheck takes readyz (default) or livez, not {path:?}");
        return ExitCode::from(2);
    }
    let config = match crate::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(addr) = config.metrics_addr else {
        eprintln!("{service}: healthcheck needs METRICS_ADDR (the listener it asks)");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{service}: cannot start the Tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let target = local(addr);
    // The timer is made inside the runtime, which it needs.
    let answer = runtime.block_on(async { tokio::time::timeout(LIMIT, get(target, path)).await });
    match answer {
        Ok(Ok((200, _))) => ExitCode::SUCCESS,
        Ok(Ok((status, body))) => {
            eprintln!("{service}: /{path} answered {status}: {}", body.trim());
            ExitCode::from(1)
        }
        Ok(Err(e)) => {
            eprintln!("{service}: /{path} on {target}: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!(
                "{service}: /{path} on {target}: no answer within {} s",
                LIMIT.as_secs()
            );
            ExitCode::from(1)
        }
    }
}

/// The address to ask: a listener on every interface is asked on loopback.
fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("/{path}"))
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn every_interface_is_asked_on_loopback() {
        assert_eq!(
            local("0.0.0.0:9090".parse().unwrap()),
            "127.0.0.1:9090".parse().unwrap()
        );
        assert_eq!(
            local("[::]:9090".parse().unwrap()),
            "[::1]:9090".parse().unwrap()
        );
        assert_eq!(
            local("10.1.2.3:9090".parse().unwrap()),
            "10.1.2.3:9090".parse().unwrap()
        );
    }
}
