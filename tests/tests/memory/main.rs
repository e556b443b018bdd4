//! Memory in flight is bounded by settings, whatever the bodies claim (issue 25, invariant
//! 3): gzip bombs sent all at once leave the process's resident memory under a stated
//! bound, every bomb is answered, and ordinary calls keep their answers meanwhile.
//!
//! A test binary of its own: the bound is read off this process's peak resident memory
//! (`VmHWM`), which no other test's allocations may share.

use std::sync::Arc;
use std::time::Duration;

use e2e::{RawPeer, gzip, reply_json, unique};
use serde_json::json;
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, Payload};

const MIB: u64 = 1024 * 1024;

/// Past this the test stops the process at once: the bound is far exceeded, and a worker
/// without a budget would go on to take gigabytes of a shared machine.
const ABORT_ABOVE: u64 = 3 * 1024 * MIB;

async fn anything(Payload(v): Payload<serde_json::Value>) -> Result<bool, ErrorReply> {
    Ok(!v.is_null())
}

async fn ping(Payload(n): Payload<u32>) -> Result<u32, ErrorReply> {
    Ok(n + 1)
}

/// A `/proc/self/status` line's value (given in kB), in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number in {line:?}"));
    kb * 1024
}

/// Starts counting the process's peak resident memory (`VmHWM`) afresh.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM (Linux 4.0 or later)");
}

/// gzip of `{"data":[0,0,…]}` with `zeros` zeros: two bytes of JSON a zero, a thousand
/// to one on the wire, and as a `serde_json::Value` some 32 bytes a zero.
fn zeros_bomb(zeros: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(b"{\"data\":[0").unwrap();
    let chunk = b",0".repeat(64 * 1024);
    let mut left = zeros - 1;
    while left > 0 {
        let n = left.min(64 * 1024);
        enc.write_all(&chunk[..2 * n]).unwrap();
        left -= n;
    }
    enc.write_all(b"]}").unwrap();
    enc.finish().unwrap()
}

/// Watches the process's resident memory until dropped, and ends the process when it
/// passes [`ABORT_ABOVE`].
struct Watch {
    stop: tokio_util::sync::CancellationToken,
}

impl Watch {
    fn start() -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        std::thread::spawn(move || {
            while !token.is_cancelled() {
                let rss = status_bytes("VmRSS");
                if rss > ABORT_ABOVE {
                    eprintln!(
                        "resident memory reached {} MiB: far past the bound; stopping the process",
                        rss / MIB
                    );
                    std::process::exit(101);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { stop }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Sends `count` copies of `bomb` to `route` at once and, while they are handled, calls
/// `ping` eight times; returns the bombs' replies and the growth of the process's peak
/// resident memory over what it was before.
async fn bombard(
    route: &str,
    ping_route: &str,
    bomb: &[u8],
    count: usize,
) -> (Vec<serde_json::Value>, u64) {
    let mut bombs = RawPeer::connect().await;
    let mut caller = RawPeer::connect().await;
    let before = status_bytes("VmRSS");
    reset_peak();
    let _watch = Watch::start();
    let props = lapin::BasicProperties::default().with_reply_to(bombs.reply_to().into());
    for i in 0..count {
        let props = props
            .clone()
            .with_correlation_id(format!("bomb-{i}").into());
        bombs.publish(route, bomb, props).await;
    }
    for n in 0..8u32 {
        let body = gzip(format!(r#"{{"data": {n}}}"#).as_bytes());
        let v = reply_json(
            &caller
                .request(ping_route, &body, &format!("ping-{n}"))
                .await,
        );
        assert_eq!(v, json!({"success": true, "data": n + 1}), "ping {n}");
    }
    let mut replies = Vec::with_capacity(count);
    for _ in 0..count {
        // Bombs are priced on as many threads as there are cores, in turn: in a debug
        // build on a busy machine a turn may take seconds.
        let reply = bombs.next_reply_within(Duration::from_secs(60)).await;
        replies.push(reply_json(&reply));
    }
    let peak = status_bytes("VmHWM");
    (replies, peak.saturating_sub(before))
}

/// Starts a Runner with `config` serving `route` (any JSON) and, on a worker of its own
/// (a worker runs at most `AMQP_PREFETCH` handlers at once, and bodies waiting for the
/// budget hold their places), `ping_route`.
async fn serve(
    config: worker_kit::config::Config,
    route: &str,
    ping_route: &str,
) -> worker_kit::runner::Running {
    e2e::start(
        worker_kit::Runner::new("memory", Arc::new(config), e2e::broker("memory").await)
            .register_worker(RpcWorker::new().route(route, anything))
            .register_worker(RpcWorker::new().route(ping_route, ping)),
    )
    .await
}

/// 64 bombs of 8 KiB at once, each inflating to 8 MiB of `[0,0,…]` (about 270 MiB as a
/// `serde_json::Value`), to a route that takes any JSON: the process's resident memory
/// grows by less than `DECODE_BUDGET_BYTES` and a margin of 64 MiB (the runtime, the broker
/// connections, the deliveries themselves), every bomb gets an answer and ordinary calls
/// keep theirs.
///
/// Under the default budget (128 MiB) each bomb is priced above the whole budget and
/// refused without being parsed. Under a budget that admits two smaller bombs at a time,
/// all 64 wait their turn and are answered as if alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bombs_stay_within_the_memory_budget() {
    e2e::init_logs();
    let (route, ping_route) = (unique("mem-any"), unique("mem-ping"));

    let config = e2e::config();
    let bound = config.decode_budget_bytes as u64 + 64 * MIB;
    let running = serve(config, &route, &ping_route).await;
    let bomb = zeros_bomb(4_190_000);
    assert!(bomb.len() < 9 * 1024, "{} bytes on the wire", bomb.len());
    let (replies, growth) = bombard(&route, &ping_route, &bomb, 64).await;
    eprintln!(
        "64 bombs of {} bytes (8 MiB inflated), default budget: peak resident memory grew by {} MiB (bound {} MiB)",
        bomb.len(),
        growth / MIB,
        bound / MIB
    );
    for v in &replies {
        assert_eq!(v["error"]["type"], json!("BadRequest"), "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("DECODE_BUDGET_BYTES"), "{v}");
    }
    assert!(
        growth < bound,
        "peak resident memory grew by {} MiB, more than the bound of {} MiB",
        growth / MIB,
        bound / MIB
    );
    running.stop().await.unwrap();

    // 256 KiB of zeros each: priced about 9 MiB, two at a time in 20 MiB.
    let mut config = e2e::config();
    config.decode_budget_bytes = 20 * 1024 * 1024;
    let bound = config.decode_budget_bytes as u64 + 64 * MIB;
    let running = serve(config, &route, &ping_route).await;
    let bomb = zeros_bomb(131_000);
    let (replies, growth) = bombard(&route, &ping_route, &bomb, 64).await;
    eprintln!(
        "64 bombs of {} bytes (256 KiB inflated), 20 MiB budget: peak resident memory grew by {} MiB (bound {} MiB)",
        bomb.len(),
        growth / MIB,
        bound / MIB
    );
    for v in &replies {
        assert_eq!(
            v,
            &json!({"success": true, "data": true}),
            "every bomb waits its turn"
        );
    }
    assert!(
        growth < bound,
        "peak resident memory grew by {} MiB, more than the bound of {} MiB",
        growth / MIB,
        bound / MIB
    );
    running.stop().await.unwrap();

    let peer = RawPeer::connect().await;
    peer.delete(&[&route, &ping_route]).await;
}
