//! gzip (RFC 1952) framing around a deflate state kept per thread.
//!
//! `GzEncoder`/`GzDecoder` set up a fresh deflate/inflate state for every body: hundreds of
//! kilobytes allocated and zeroed per message, which on small RPC bodies costs more than
//! the compression itself. Resetting one state per thread keeps the work proportional to
//! the body.

use std::cell::RefCell;
use std::io;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

thread_local! {
    // Level 1: bodies are small and latency matters more than bytes on a LAN.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Header of the members we write: no name, no mtime, OS "unknown" (as `GzEncoder` does).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Bodies shorter than this are framed as stored (uncompressed) deflate blocks: resetting
/// the deflate state clears a 64 KiB hash table, which costs more than the few bytes
/// compression would save on them.
const STORE_BELOW: usize = 256;

/// One gzip member holding `data`.
pub(crate) fn compress(data: &[u8]) -> Vec<u8> {
    if data.len() < STORE_BELOW {
        // Sized exactly: header, one stored block (5 bytes of framing), trailer. Growing
        // a guessed buffer here was a realloc on every small reply.
        let mut out = Vec::with_capacity(HEADER.len() + 5 + data.len() + 8);
        out.extend_from_slice(&HEADER);
        stored(data, &mut out);
        trailer(data, &mut out);
        return out;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    out.extend_from_slice(&HEADER);
    deflate(data, &mut out);
    trailer(data, &mut out);
    out
}

/// The member's trailer: CRC-32 and length of the uncompressed data.
fn trailer(data: &[u8], out: &mut Vec<u8>) {
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
}

fn deflate(data: &[u8], out: &mut Vec<u8>) {
    let deflated = DEFLATE.try_with(|cell| {
        let c = &mut *cell.borrow_mut();
        c.reset();
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            // Only fails on a misused stream, which resetting first rules out; stored
            // blocks of the input are a valid fallback that never needs the state.
            match c.compress_vec(
                &data[consumed.min(data.len())..],
                out,
                FlushCompress::Finish,
            ) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(_) => {
                    out.truncate(HEADER.len());
                    stored(data, out);
                    break;
                }
            }
        }
    });
    if deflated.is_err() {
        // The thread is being torn down and its state is gone.
        stored(data, out);
    }
}

/// `data` as deflate stored blocks (no compression).
fn stored(data: &[u8], out: &mut Vec<u8>) {
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u8::from(chunks.peek().is_none());
        let len = chunk.len() as u16;
        out.push(last);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Where the deflate data of the gzip member at the start of `body` begins.
fn skip_header(body: &[u8]) -> io::Result<usize> {
    if body.len() < 10 || body[0] != 0x1f || body[1] != 0x8b {
        return Err(invalid("invalid gzip header"));
    }
    if body[2] != 8 {
        return Err(invalid("unsupported gzip compression method"));
    }
    let flags = body[3];
    if flags & 0xe0 != 0 {
        return Err(invalid("invalid gzip header flags"));
    }
    let truncated = || invalid("truncated gzip header");
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let xlen = body.get(pos..pos + 2).ok_or_else(truncated)?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = body.get(pos..).ok_or_else(truncated)?;
            pos += rest.iter().position(|b| *b == 0).ok_or_else(truncated)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > body.len() {
        return Err(truncated());
    }
    Ok(pos)
}

/// Inflates the gzip member at the start of `body`, stopping once the output exceeds
/// `cap` bytes (the result is then `cap + 1` bytes long, for the caller to refuse).
/// Checks the trailer's CRC-32 and length; data after the member is ignored, as
/// `GzDecoder` does.
pub(crate) fn decompress(body: &[u8], cap: usize) -> io::Result<Vec<u8>> {
    #[cfg(test)]
    passes::count(body);
    let start = skip_header(body)?;
    let input = &body[start..];
    let limit = cap.saturating_add(1);
    let mut out = Vec::with_capacity(
        body.len()
            .saturating_mul(4)
            .clamp(256, 64 * 1024)
            .min(limit),
    );
    let mut inflate = |d: &mut Decompress| {
        d.reset(false);
        loop {
            let done = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
            if out.len() >= limit {
                return Ok(None);
            }
            if out.len() == out.capacity() {
                let more = out.capacity().max(256).min(limit - out.len());
                out.reserve_exact(more);
            }
            let before = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(
                    &input[done.min(input.len())..],
                    &mut out,
                    FlushDecompress::None,
                )
                .map_err(|e| invalid(&format!("corrupt deflate stream: {e}")))?;
            if status == Status::StreamEnd {
                return Ok(Some(usize::try_from(d.total_in()).unwrap_or(usize::MAX)));
            }
            if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gzip stream ends before its data does",
                ));
            }
        }
    };
    let consumed = match INFLATE.try_with(|cell| inflate(&mut cell.borrow_mut())) {
        Ok(r) => r?,
        // The thread is being torn down and its state is gone.
        Err(_) => inflate(&mut Decompress::new(false))?,
    };
    let Some(consumed) = consumed else {
        // Past the cap: the caller refuses it without needing the rest.
        out.truncate(limit);
        return Ok(out);
    };
    let mut crc = Crc::new();
    crc.update(&out);
    check_trailer(input, consumed, &crc, out.len())?;
    Ok(out)
}

/// The length of text the trailer at the end of `body` gives (modulo 2³²): what an honest
/// sender's body inflates to. Anyone can write these four bytes, so it may decide where a
/// body is inflated, never what it is charged or allowed.
pub(crate) fn claimed_len(body: &[u8]) -> Option<usize> {
    let trailer = body.get(body.len().checked_sub(4)?..)?;
    usize::try_from(u32::from_le_bytes(trailer.try_into().ok()?)).ok()
}

/// Inflates the gzip member at the start of `body` through a buffer of [`PIECE`] bytes,
/// handing each piece to `sink` and keeping none: what the body decodes to, learnt without
/// holding it. Returns how many bytes came out, stopping once that is more than `cap` or
/// `sink` returns `false` (the rest is not inflated). A member inflated to its end has its
/// trailer's CRC-32 and length checked.
pub(crate) fn inflate_each(
    body: &[u8],
    cap: usize,
    mut sink: impl FnMut(&[u8]) -> bool,
) -> io::Result<usize> {
    #[cfg(test)]
    passes::count(body);
    let start = skip_header(body)?;
    let input = &body[start..];
    let mut piece = vec![0u8; PIECE];
    let mut crc = Crc::new();
    let mut total = 0usize;
    let mut inflate = |d: &mut Decompress| {
        d.reset(false);
        loop {
            let done = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
            let before = d.total_out();
            let status = d
                .decompress(
                    &input[done.min(input.len())..],
                    &mut piece,
                    FlushDecompress::None,
                )
                .map_err(|e| invalid(&format!("corrupt deflate stream: {e}")))?;
            let out = usize::try_from(d.total_out() - before).unwrap_or(usize::MAX);
            let read = usize::try_from(d.total_in()).unwrap_or(usize::MAX) - done;
            let more = sink(&piece[..out]);
            crc.update(&piece[..out]);
            total = total.saturating_add(out);
            if total > cap || !more {
                return Ok(None);
            }
            if status == Status::StreamEnd {
                return Ok(Some(usize::try_from(d.total_in()).unwrap_or(usize::MAX)));
            }
            if out == 0 && read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gzip stream ends before its data does",
                ));
            }
        }
    };
    let consumed = match INFLATE.try_with(|cell| inflate(&mut cell.borrow_mut())) {
        Ok(r) => r?,
        // The thread is being torn down and its state is gone.
        Err(_) => inflate(&mut Decompress::new(false))?,
    };
    let Some(consumed) = consumed else {
        return Ok(total);
    };
    check_trailer(input, consumed, &crc, total)?;
    Ok(total)
}

/// The size of the pieces [`inflate_each`] inflates into.
const PIECE: usize = 32 * 1024;

/// Checks the trailer after the `consumed` bytes of deflate data in `input` against the
/// CRC-32 and length of what they inflated to.
fn check_trailer(input: &[u8], consumed: usize, crc: &Crc, len: usize) -> io::Result<()> {
    let trailer = input
        .get(consumed..consumed + 8)
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "gzip trailer missing"))?;
    if trailer[..4] != crc.sum().to_le_bytes() {
        return Err(invalid(
            "corrupt gzip stream does not have a matching checksum",
        ));
    }
    if trailer[4..] != (len as u32).to_le_bytes() {
        return Err(invalid(
            "corrupt gzip stream does not have a matching length",
        ));
    }
    Ok(())
}

/// How many times each body was inflated (test builds only), so that tests can hold the
/// decode path to inflating a body once. Keyed by the body's last 8 bytes (a member's
/// CRC-32 and length): tests running at once inflate bodies of their own.
#[cfg(test)]
pub(crate) mod passes {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    static PASSES: Mutex<Option<HashMap<[u8; 8], usize>>> = Mutex::new(None);

    fn key(body: &[u8]) -> Option<[u8; 8]> {
        body.get(body.len().checked_sub(8)?..)?.try_into().ok()
    }

    /// Counts a pass over `body`.
    pub(crate) fn count(body: &[u8]) {
        if let Some(k) = key(body) {
            let mut passes = PASSES.lock().unwrap_or_else(PoisonError::into_inner);
            *passes
                .get_or_insert_with(HashMap::new)
                .entry(k)
                .or_default() += 1;
        }
    }

    /// The passes over `body` so far.
    pub(crate) fn of(body: &[u8]) -> usize {
        let passes = PASSES.lock().unwrap_or_else(PoisonError::into_inner);
        key(body)
            .and_then(|k| passes.as_ref()?.get(&k).copied())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use flate2::GzBuilder;
    use flate2::read::GzDecoder;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;

    use super::*;

    fn gz_std(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn headers_with_every_optional_field_are_read() {
        let mut e = GzBuilder::new()
            .extra(vec![1, 2, 3])
            .filename("f.json")
            .comment("made by hand")
            .write(Vec::new(), Compression::best());
        e.write_all(b"{\"data\": 1}").unwrap();
        let body = e.finish().unwrap();
        assert_eq!(decompress(&body, 1024).unwrap(), b"{\"data\": 1}");
    }

    #[test]
    fn corruption_is_detected() {
        let mut body = gz_std(b"{\"data\": \"hello hello hello\"}");
        let n = body.len();
        body[n - 6] ^= 0xff; // crc
        assert!(decompress(&body, 1024).is_err());
        let body = gz_std(b"{\"data\": 1}");
        assert!(decompress(&body[..body.len() - 3], 1024).is_err());
        assert!(decompress(&body[..12], 1024).is_err());
        assert!(decompress(&[0x1f, 0x8b, 8, 0xff, 0, 0, 0, 0, 0, 0], 1024).is_err());
    }

    #[test]
    fn stops_one_byte_past_the_cap() {
        let body = gz_std(&vec![b'a'; 10_000]);
        assert_eq!(decompress(&body, 100).unwrap().len(), 101);
        assert_eq!(decompress(&body, 10_000).unwrap().len(), 10_000);
    }

    #[test]
    fn stored_fallback_is_valid_gzip() {
        for len in [0, 5, 65_535, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut body = HEADER.to_vec();
            stored(&data, &mut body);
            trailer(&data, &mut body);
            let mut back = Vec::new();
            GzDecoder::new(&body[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn small_bodies_are_stored_and_large_ones_compressed() {
        let small = br#"{"data":"hi"}"#;
        let body = compress(small);
        assert_eq!(body.len(), 10 + 5 + small.len() + 8);
        assert_eq!(body.capacity(), body.len(), "allocated once, exactly");
        let mut back = Vec::new();
        GzDecoder::new(&body[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, small);
        let large = br#"{"id":1,"name":"customer"},"#.repeat(40);
        assert!(compress(&large).len() < large.len() / 4);
    }

    #[test]
    fn inflating_piece_by_piece_sees_what_decompress_returns() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8).collect();
        let body = gz_std(&data);
        let mut seen = Vec::new();
        let n = inflate_each(&body, usize::MAX - 1, |p| {
            seen.extend_from_slice(p);
            true
        })
        .unwrap();
        assert_eq!(n, data.len());
        assert_eq!(seen, data);
        // Past the cap it stops, as decompress does.
        assert!(inflate_each(&body, 1000, |_| true).unwrap() > 1000);
        // And when the sink has seen enough.
        let n = inflate_each(&body, usize::MAX - 1, |_| false).unwrap();
        assert!(n > 0 && n <= PIECE, "{n}");
        let mut corrupt = body.clone();
        let len = corrupt.len();
        corrupt[len - 6] ^= 0xff;
        assert!(inflate_each(&corrupt, usize::MAX - 1, |_| true).is_err());
        assert!(inflate_each(&body[..body.len() / 2], usize::MAX - 1, |_| true).is_err());
    }

    proptest! {
        #[test]
        fn round_trips_both_ways_with_flate2(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
            let ours = compress(&data);
            let mut back = Vec::new();
            GzDecoder::new(&ours[..]).read_to_end(&mut back).unwrap();
            prop_assert_eq!(&back, &data);
            prop_assert_eq!(decompress(&gz_std(&data), usize::MAX - 1).unwrap(), data);
        }
    }
}
