//! Decoding a large body off the runtime's threads. Gunzip, the envelope's JSON and the
//! payload's deserialization run synchronously; for a body of several MiB that is tens of
//! milliseconds in which every other task on the same runtime thread waits. Above
//! [`OFFLOAD_BYTES`] they run on Tokio's blocking pool instead; below it the hop would cost
//! more than the work.

use crate::handler::extract::Incoming;
use crate::handler::routes::BoundHandler;
use crate::handler::{BoxFuture, Outcome};
use crate::wire::envelope::{self, DecodeError, Limits, Request};

/// Bodies larger than this (decoded bytes, see [`size_hint`]) are decoded on the
/// blocking pool.
///
/// 16 KiB, measured (`scripts/bench --only decode`, release, a loaded 2-core machine):
/// gunzip, the envelope and the payload as JSON run at 35 to 80 MB/s, so 16 KiB takes about
/// 250 µs inline and 64 KiB 1.6 ms, while the hop to the blocking pool and back costs about
/// 90 µs. From 16 KiB the hop is the smaller cost, and the inline work is past the 100 µs
/// or so a task should run between yields.
pub(crate) const OFFLOAD_BYTES: usize = 16 * 1024;

/// Runs `f` inline for a body of `len` bytes up to [`OFFLOAD_BYTES`], on the blocking
/// pool above it.
async fn maybe_blocking<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    if len <= OFFLOAD_BYTES {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        // A panic is re-raised on the message's task, whose guard settles the delivery.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the blocking pool dropped a decode: {e}"),
        },
    }
}

/// How many bytes decoding `body` handles: a gzip body's trailer states its decompressed
/// size (modulo 4 GiB; the decoder stops at `MAX_DECODED_BYTES` whatever it says), which
/// is what gunzip and the JSON parser work through; a few KiB on the wire can be MiBs.
pub(crate) fn size_hint(body: &[u8]) -> usize {
    let gzip_size = match body {
        [0x1f, 0x8b, .., a, b, c, d] if body.len() >= 18 => {
            u32::from_le_bytes([*a, *b, *c, *d]) as usize
        }
        _ => 0,
    };
    body.len().max(gzip_size)
}

/// [`envelope::decode_request`], off the runtime's threads for a large body.
pub(crate) async fn decode_request(body: &[u8], limits: &Limits) -> Result<Request, DecodeError> {
    let size = size_hint(body);
    if size <= OFFLOAD_BYTES {
        return envelope::decode_request(body, limits);
    }
    let (owned, limits) = (body.to_vec(), *limits);
    maybe_blocking(size, move || envelope::decode_request(&owned, &limits)).await
}

/// The handler's future for `msg` (its extractors, which deserialize the payload, run
/// here), built off the runtime's threads when the payload is large.
pub(crate) async fn prepare(handler: &BoundHandler, msg: Incoming) -> BoxFuture<Outcome> {
    let len = msg.data.get().len();
    let handler = handler.clone();
    maybe_blocking(len, move || handler(msg)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gzip_body_is_as_large_as_it_inflates_to() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'x'; 1 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 8 * 1024);
        assert_eq!(size_hint(&gz), 1 << 20);
        assert_eq!(size_hint(br#"{"data": 1}"#), 11);
    }
}
