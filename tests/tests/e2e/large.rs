//! Large bodies are decoded (gunzip, JSON, the payload's own deserialization) off the
//! runtime's threads, so one big message does not stall the other handlers on its thread.

use std::sync::Mutex;
use std::thread::ThreadId;

use e2e::{RawPeer, gzip, reply_json, unique};
use serde_json::json;
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, Payload};

/// The threads payloads of each size were deserialized on.
static SEEN: Mutex<Vec<(usize, ThreadId)>> = Mutex::new(Vec::new());

fn noting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    SEEN.lock()
        .unwrap()
        .push((s.len(), std::thread::current().id()));
    Ok(s)
}

#[derive(serde::Deserialize)]
struct Blob {
    #[serde(deserialize_with = "noting")]
    text: String,
}

async fn size(Payload(b): Payload<Blob>) -> Result<usize, ErrorReply> {
    Ok(b.text.len())
}

/// On a single-threaded runtime (this test's), a small body is decoded inline and a large
/// one on another thread.
#[tokio::test]
async fn large_bodies_are_decoded_off_the_runtime_thread() {
    let here = std::thread::current().id();
    let route = unique("large");
    let running = e2e::start(
        e2e::runner("large")
            .await
            .register_worker(RpcWorker::new().route(&route, size)),
    )
    .await;
    let mut peer = RawPeer::connect().await;
    for n in [16usize, 4 * 1024 * 1024] {
        let body = gzip(
            json!({"data": {"text": "x".repeat(n)}})
                .to_string()
                .as_bytes(),
        );
        let v = reply_json(&peer.request(&route, &body, &format!("n{n}")).await);
        assert_eq!(v["data"], json!(n), "{v}");
    }
    running.stop().await.unwrap();
    let seen = SEEN.lock().unwrap().clone();
    let on = |n: usize| seen.iter().find(|(len, _)| *len == n).map(|(_, t)| *t);
    assert_eq!(on(16), Some(here), "a small body is decoded inline");
    let big = on(4 * 1024 * 1024).expect("the large body was decoded");
    assert_ne!(
        big, here,
        "a large body is decoded off the runtime's thread"
    );
    peer.delete(&[&route]).await;
}
