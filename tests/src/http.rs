//! A minimal HTTP/1.1 client for the tests: scraping `/metrics` and asking `/readyz`.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to `url` (`http://host:port/path`) with `headers`; returns the status and
/// the body.
///
/// # Panics
///
/// When the server cannot be reached or the URL is not `http://`.
pub async fn request(method: Method, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let stream = TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("connecting to {authority}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `GET http://{addr}{path}`.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    request(Method::GET, &format!("http://{addr}{path}"), &[]).await
}

/// The value of the sample `name{labels}` in an exposition, where `labels` are the label
/// pairs as they appear (`route="r",kind="rpc"`) in any order; `None` when absent.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let (set, value) = r.split_once("} ")?;
                (set, value)
            }
            None => ("", rest.strip_prefix(' ')?),
        };
        let all = labels
            .iter()
            .all(|(k, v)| set.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        all.then(|| value.split(' ').next()?.parse().ok()).flatten()
    })
}
