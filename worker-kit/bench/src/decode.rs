//! What decoding a request costs by size: gunzip, the envelope's JSON and deserializing the
//! payload, run inline on a thread, against the cost of moving the work to Tokio's blocking
//! pool. The kit decodes bodies above 16 KiB (decoded) on the blocking pool; this table is
//! where that threshold comes from.

use std::time::{Duration, Instant};

use worker_kit::wire::envelope::{self, Encoding, Limits};

/// Decoded sizes measured.
const SIZES: [usize; 7] = [
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
];

/// One row: the decoded size, the time of one inline decode, its rate.
pub(crate) struct DecodeRow {
    pub(crate) bytes: usize,
    pub(crate) inline: Duration,
    pub(crate) mb_per_sec: f64,
}

/// Times decodes of every size, `budget` of work each, and the blocking-pool hop.
pub(crate) async fn measure(
    payload: impl Fn(usize) -> Box<serde_json::value::RawValue>,
    budget: Duration,
) -> anyhow::Result<(Vec<DecodeRow>, Duration)> {
    let limits = Limits {
        max_message_bytes: 16 << 20,
        max_decoded_bytes: 16 << 20,
    };
    let mut rows = Vec::new();
    for bytes in SIZES {
        let body = envelope::encode_request(&payload(bytes), Encoding::Gzip)?;
        let decode = || -> anyhow::Result<()> {
            let req = envelope::decode_request(&body, &limits)?;
            let value: serde_json::Value = serde_json::from_str(req.data.get())?;
            anyhow::ensure!(value.is_array(), "the payload came back");
            Ok(())
        };
        decode()?;
        let started = Instant::now();
        let mut n = 0u32;
        while started.elapsed() < budget || n < 3 {
            decode()?;
            n += 1;
        }
        let inline = started.elapsed() / n;
        rows.push(DecodeRow {
            bytes,
            inline,
            mb_per_sec: bytes as f64 / inline.as_secs_f64() / 1e6,
        });
    }
    // The hop: a closure that does nothing, sent to the blocking pool and awaited.
    let hops = 2_000u32;
    let started = Instant::now();
    for _ in 0..hops {
        tokio::task::spawn_blocking(|| ()).await?;
    }
    Ok((rows, started.elapsed() / hops))
}
