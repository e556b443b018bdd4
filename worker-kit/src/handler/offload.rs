//! Decoding a request within the process's memory budget ([`DecodeBudget`]), off the
//! runtime's threads when it is large.
//!
//! The body is priced from what it actually decodes to, never from what it says about
//! itself (a gzip trailer's length is four bytes anyone can write). A gzip body whose
//! trailer says it is small is inflated up to [`OFFLOAD_BYTES`] and, when it ends within
//! that, priced, reserved and decoded on the spot. A larger one is inflated once, on
//! Tokio's blocking pool: each piece of text is priced (its bytes and values, `wire::cost`)
//! and paid for from the budget before it is kept, and the request is decoded from the
//! text kept. When the budget cannot pay for a piece now, the text is dropped and the rest
//! only priced; the body then waits for its whole price holding nothing but its received
//! bytes, and is inflated again once the price is reserved. Gunzip, the envelope's JSON and
//! the payload's deserialization of a body of several MiB take tens of milliseconds in
//! which every other task on the same runtime thread would wait.

use tokio::time::Instant;

use crate::handler::budget::{DecodeBudget, Lease, Refusal};
use crate::handler::extract::Incoming;
use crate::handler::routes::BoundHandler;
use crate::handler::{BoxFuture, Outcome};
use crate::wire::cost;
use crate::wire::envelope::{self, DecodeError, Encoding, Limits, Request};
use crate::wire::gzip;

/// Bodies larger than this (decoded bytes, as inflated) are decoded on the blocking pool.
///
/// 16 KiB, measured (`scripts/bench --only decode`, release, a loaded 2-core machine):
/// gunzip, the envelope and the payload as JSON run at 35 to 80 MB/s, so 16 KiB takes about
/// 250 µs inline and 64 KiB 1.6 ms, while the hop to the blocking pool and back costs about
/// 90 µs. From 16 KiB the hop is the smaller cost, and the inline work is past the 100 µs
/// or so a task should run between yields.
pub(crate) const OFFLOAD_BYTES: usize = 16 * 1024;

/// A decoded request and its reservation of the budget: hold the lease until the handler
/// is done with the request.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) request: Request,
    pub(crate) lease: Lease,
}

/// Why a request was not decoded.
#[derive(Debug)]
pub(crate) enum Undecoded {
    /// The body is not a request within the limits: refused for good.
    Invalid(DecodeError),
    /// The budget refused it: for good ([`Refusal::TooCostly`]) or for now
    /// ([`Refusal::Exhausted`]).
    Budget(Refusal),
}

impl From<DecodeError> for Undecoded {
    fn from(e: DecodeError) -> Self {
        Self::Invalid(e)
    }
}

impl From<Refusal> for Undecoded {
    fn from(r: Refusal) -> Self {
        Self::Budget(r)
    }
}

/// At most this many decodes run on the blocking pool at once, process-wide: one per
/// core. A burst of large bodies (64 bombs at once) then takes its turns instead of
/// putting 64 threads against the runtime's few, which would leave ordinary calls no CPU.
fn decoders() -> &'static tokio::sync::Semaphore {
    static DECODERS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    DECODERS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from))
    })
}

/// Runs `f` on the blocking pool, once one of the [`decoders`] is free.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // Never closed, so acquiring cannot fail; without a permit the work still runs.
    let _turn = decoders().acquire().await.ok();
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        // A panic is re-raised on the message's task, whose guard settles the delivery.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the blocking pool dropped a decode: {e}"),
        },
    }
}

/// How much of a gzip body is inflated before deciding where to decode it.
fn head_cap(limits: &Limits) -> usize {
    OFFLOAD_BYTES.min(limits.max_decoded_bytes)
}

/// Decodes `body` once the budget holds its price, waiting for it until `until` at the
/// latest.
///
/// # Errors
///
/// [`Undecoded::Invalid`] for a body that is not a request within `limits`, and
/// [`Undecoded::Budget`] when its price was not reserved.
pub(crate) async fn decode_request(
    body: &[u8],
    limits: &Limits,
    budget: &DecodeBudget,
    until: Option<Instant>,
) -> Result<Decoded, Undecoded> {
    if body.len() > limits.max_message_bytes {
        return Err(DecodeError::TooLarge {
            size: body.len(),
            limit: limits.max_message_bytes,
        }
        .into());
    }
    let too_large = || DecodeError::DecodedTooLarge {
        limit: limits.max_decoded_bytes,
    };
    let limits = *limits;
    match Encoding::detect(body) {
        Encoding::Plain if body.len() > limits.max_decoded_bytes => Err(too_large().into()),
        Encoding::Plain if body.len() <= OFFLOAD_BYTES => {
            let lease = budget
                .reserve(cost::of_text(body, body.len()), until)
                .await?;
            let request = envelope::decode_request(body, &limits)?;
            Ok(Decoded { request, lease })
        }
        Encoding::Plain => {
            let owned = body.to_vec();
            let (owned, price) = blocking(move || {
                let price = cost::of_text(&owned, owned.len());
                (owned, price)
            })
            .await;
            let lease = budget.reserve(price, until).await?;
            let request = blocking(move || envelope::decode_request(&owned, &limits)).await?;
            Ok(Decoded { request, lease })
        }
        Encoding::Gzip => decode_gzip(body, limits, budget, until).await,
    }
}

/// [`decode_request`] of a gzip body within `MAX_MESSAGE_BYTES`.
async fn decode_gzip(
    body: &[u8],
    limits: Limits,
    budget: &DecodeBudget,
    until: Option<Instant>,
) -> Result<Decoded, Undecoded> {
    let cap = head_cap(&limits);
    let too_large = || DecodeError::DecodedTooLarge {
        limit: limits.max_decoded_bytes,
    };
    // An honest trailer tells a large body from a small one, sparing a large body an
    // inflate of its head here; a lying one costs only that.
    if gzip::claimed_len(body).is_none_or(|n| n <= cap) {
        let head = gzip::decompress(body, cap).map_err(DecodeError::Gzip)?;
        if head.len() <= cap {
            let lease = budget
                .reserve(cost::of_text(&head, body.len()), until)
                .await?;
            let request = envelope::request_from_bytes(head, Encoding::Gzip)?;
            return Ok(Decoded { request, lease });
        }
        if cap == limits.max_decoded_bytes {
            return Err(too_large().into());
        }
    }
    let owned = body.to_vec();
    let taken = budget.clone();
    let (owned, first) = blocking(move || {
        let first = inflate_and_decode(&owned, limits, &taken);
        (owned, first)
    })
    .await;
    let scan = match first? {
        First::Decoded(decoded) => return Ok(decoded),
        First::Priced(scan) => scan,
    };
    if scan.bytes() > limits.max_decoded_bytes {
        return Err(too_large().into());
    }
    // The budget could not hold it while it was inflated: wait for the whole price, then
    // inflate it again.
    let lease = budget
        .reserve(scan.cost_inflated(owned.len()), until)
        .await?;
    let request = blocking(move || envelope::decode_request(&owned, &limits)).await?;
    Ok(Decoded { request, lease })
}

/// What the first inflate of a large gzip body came to.
enum First {
    /// Priced, paid for and decoded in that one pass.
    Decoded(Decoded),
    /// Priced only: the budget could not hold it then, or it is too costly or too large.
    Priced(cost::Scan),
}

/// Inflates `body` once, paying for its text piece by piece from `budget` as it comes and
/// decoding the request from what was kept; when the budget cannot pay for a piece now,
/// prices the rest without holding it (the caller waits for the price).
fn inflate_and_decode(
    body: &[u8],
    limits: Limits,
    budget: &DecodeBudget,
) -> Result<First, Undecoded> {
    let mut lease = budget.growing();
    // Inflating stops once the price is past the whole budget: a bomb is refused after as
    // little of it as that takes.
    let inflated = cost::inflate_priced(body, limits.max_decoded_bytes, budget.limit(), |price| {
        lease.try_grow(price)
    })
    .map_err(DecodeError::Gzip)?;
    match inflated {
        cost::Inflated::Kept(text) => {
            let request = envelope::request_from_bytes(text, Encoding::Gzip)?;
            Ok(First::Decoded(Decoded { request, lease }))
        }
        cost::Inflated::Scanned(scan) => Ok(First::Priced(scan)),
    }
}

/// The handler's future for `msg` (its extractors, which deserialize the payload, run
/// here), built off the runtime's threads when the payload is large.
pub(crate) async fn prepare(handler: &BoundHandler, msg: Incoming) -> BoxFuture<Outcome> {
    let len = msg.data.get().len();
    let handler = handler.clone();
    if len <= OFFLOAD_BYTES {
        return handler.run(msg);
    }
    blocking(move || handler.run(msg)).await
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// `{"data":[0,0,…]}` of `zeros` zeros, gzipped, its trailer claiming 1 byte.
    fn lying_bomb(zeros: usize) -> Vec<u8> {
        let text = format!("{{\"data\":[0{}]}}", ",0".repeat(zeros - 1));
        let mut body = gz(text.as_bytes());
        let n = body.len();
        body[n - 4..].copy_from_slice(&1u32.to_le_bytes());
        body
    }

    #[tokio::test]
    async fn a_small_body_is_priced_by_what_it_inflates_to() {
        let budget = DecodeBudget::new(MIB);
        let body = gz(format!("{{\"data\":[0{}]}}", ",0".repeat(99_999)).as_bytes());
        assert!(body.len() < OFFLOAD_BYTES);
        match decode_request(&body, &Limits::default(), &budget, None).await {
            Err(Undecoded::Budget(Refusal::TooCostly { cost, .. })) => {
                // Priced until past the whole budget, then refused.
                assert!(cost > MIB, "{cost}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(budget.in_use(), 0);
    }

    /// The trailer says 1 byte: the body is inflated past its head, paying for what it
    /// holds, and found out by its length.
    #[tokio::test]
    async fn a_lying_trailer_is_found_out() {
        let budget = DecodeBudget::new(64 * MIB);
        let body = lying_bomb(100_000);
        assert!(body.len() < OFFLOAD_BYTES);
        match decode_request(&body, &Limits::default(), &budget, None).await {
            Err(Undecoded::Invalid(DecodeError::Gzip(e))) => {
                assert!(e.to_string().contains("length"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_lease_holds_the_price_until_dropped() {
        let budget = DecodeBudget::new(64 * MIB);
        let text = format!("{{\"data\":[0{}]}}", ",0".repeat(99_999));
        let decoded = decode_request(&gz(text.as_bytes()), &Limits::default(), &budget, None)
            .await
            .unwrap();
        assert_eq!(decoded.request.data.get().len(), text.len() - 9);
        assert!(budget.in_use() > 100_000 * cost::VALUE_BYTES);
        drop(decoded);
        assert_eq!(budget.in_use(), 0);
    }

    /// `{"data":[…]}` of customer-like records, about `len` bytes of text, unique to this
    /// call (so that its inflates are counted apart from other tests').
    fn records(len: usize) -> String {
        let nonce: u64 = rand::random();
        let mut text = format!(r#"{{"data":[{{"nonce":{nonce}}}"#);
        for i in 0u64.. {
            if text.len() + 100 > len {
                break;
            }
            text.push_str(&format!(
                r#",{{"id":{i},"name":"customer {}","email":"c{}@example.com","balance":{}.{:02}}}"#,
                i * 7919 % 100_000,
                i * 31 % 9973,
                i * 13 % 10_000,
                i % 100
            ));
        }
        text.push_str("]}");
        text
    }

    /// A body past the inline threshold is inflated once, while it is priced, and decoded
    /// from what that kept; its price is the one its text is priced at.
    #[tokio::test]
    async fn a_large_gzip_body_is_inflated_once() {
        let budget = DecodeBudget::new(64 * MIB);
        for len in [64 * 1024, 600 * 1024] {
            let text = records(len);
            let body = gz(text.as_bytes());
            let decoded = decode_request(&body, &Limits::default(), &budget, None)
                .await
                .unwrap();
            assert_eq!(decoded.request.data.get(), &text[8..text.len() - 1]);
            assert_eq!(gzip::passes::of(&body), 1, "{len} bytes of text");
            assert_eq!(
                budget.in_use(),
                cost::of_text(text.as_bytes(), body.len()) + text.len()
            );
            drop(decoded);
            assert_eq!(budget.in_use(), 0);
        }
    }

    /// The budget's gauges show what a large body holds while it is handled, and 0 once
    /// it is done.
    #[tokio::test]
    async fn the_budget_metrics_follow_a_large_body() {
        let metrics = crate::observe::Metrics::new();
        let budget = DecodeBudget::new(64 * MIB);
        metrics.report_decode_budget(budget.clone());
        let gauge = |name: &str| -> usize {
            let text = metrics.encode();
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        assert_eq!(gauge("worker_kit_decode_budget_in_use_bytes"), 0);
        assert_eq!(gauge("worker_kit_decode_budget_bytes"), 64 * MIB);
        let body = gz(records(600 * 1024).as_bytes());
        let decoded = decode_request(&body, &Limits::default(), &budget, None)
            .await
            .unwrap();
        let held = gauge("worker_kit_decode_budget_in_use_bytes");
        assert!(held > 2 * 600 * 1024, "{held}");
        assert_eq!(held, budget.in_use());
        drop(decoded);
        assert_eq!(gauge("worker_kit_decode_budget_in_use_bytes"), 0);
    }

    /// Times the decode path (pricing, the budget, gunzip, the envelope) of a 64 KiB gzip
    /// request, as the RPC and queue workers run it. A measurement, run in release:
    /// `cargo test --release -p worker-kit --lib decode_path_timing -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: run in release"]
    async fn decode_path_timing() {
        let budget = DecodeBudget::new(128 * MIB);
        let text = records(64 * 1024);
        let body = gz(text.as_bytes());
        let runs: u32 = std::env::var("DECODE_RUNS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(5_000);
        let started = std::time::Instant::now();
        for _ in 0..runs {
            let d = decode_request(&body, &Limits::default(), &budget, None)
                .await
                .unwrap();
            assert!(d.request.data.get().len() > 60_000);
        }
        let each = started.elapsed() / runs;
        eprintln!(
            "decode path, {} bytes of text ({} gzip): {each:?} a body, {:.0} bodies/s, {} inflate passes",
            text.len(),
            body.len(),
            1.0 / each.as_secs_f64(),
            gzip::passes::of(&body),
        );
    }

    #[tokio::test]
    async fn a_small_body_is_decoded_and_priced_small() {
        let budget = DecodeBudget::new(MIB);
        for body in [gz(br#"{"data": [1, 2]}"#), br#"{"data": [1, 2]}"#.to_vec()] {
            let d = decode_request(&body, &Limits::default(), &budget, None)
                .await
                .unwrap();
            assert_eq!(d.request.data.get(), "[1, 2]");
            assert!(budget.in_use() < 4096, "{}", budget.in_use());
        }
    }
}
