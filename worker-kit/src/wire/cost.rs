//! What a body costs in memory once decoded, told from its JSON text before anything is
//! built from it, so that a process can refuse or delay what it cannot afford.
//!
//! A request's decoded text is held twice at its peak (the inflated text while the
//! envelope is read, then the copy of `data` the handler parses, which lives as long as
//! the handler runs), and the handler's payload costs its own: as a `serde_json::Value`
//! (what a route that takes any JSON builds, and more than any typed payload of the same
//! text) every value is 32 bytes in its array or map, arrays grow by doubling, and every
//! map entry and string is an allocation of its own. What decides the cost is how many
//! values the text holds, not its length: `[0,0,…]` takes 2 bytes of text a value, a string
//! of text takes none besides its bytes.
//!
//! [`Scan`] counts the values in one pass (any chunking) and [`Scan::cost`] prices them at
//! [`VALUE_BYTES`] each, measured: the test `the_estimate_covers_what_decoding_takes` below
//! counts the bytes the allocator hands out (with glibc's header and rounding) while a
//! body of each shape is decoded and its `data` parsed as a `Value`, and holds the peak
//! against the estimate.

/// Bytes charged per JSON value (array element, map key or value), besides the text: 32
/// for the `Value` itself, up to as much again for the free half of an array that grew by
/// doubling, and the allocator's header and rounding of a short string.
pub(crate) const VALUE_BYTES: usize = 64;

/// Bytes charged besides per string (a key or a value): its own allocation, 32 bytes at
/// least with the allocator's header.
pub(crate) const STRING_BYTES: usize = 32;

/// Bytes charged besides per array: the first allocation of its elements (room for 4
/// `Value`s, and the allocator's header).
pub(crate) const ARRAY_BYTES: usize = 144;

/// Bytes charged besides per object: a `serde_json::Map` is a B-tree whose first node
/// holds 11 keys and 11 values (632 bytes, and the allocator's header).
pub(crate) const OBJECT_BYTES: usize = 640;

/// A running count of the values in a JSON text fed to it in chunks.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scan {
    bytes: usize,
    /// Commas, colons and opening brackets outside strings: one more value each.
    separators: usize,
    /// Opening brackets outside strings: arrays.
    arrays: usize,
    /// Opening braces outside strings: objects.
    objects: usize,
    /// Strings (keys and values).
    strings: usize,
    in_string: bool,
    escaped: bool,
}

impl Scan {
    /// Counts `chunk`, the text's next bytes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len();
        let (mut separators, mut arrays, mut objects, mut strings) = (0, 0, 0, 0);
        for &b in chunk {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => {
                        self.in_string = true;
                        strings += 1;
                    }
                    b',' | b':' => separators += 1,
                    b'[' => {
                        separators += 1;
                        arrays += 1;
                    }
                    b'{' => {
                        separators += 1;
                        objects += 1;
                    }
                    _ => {}
                }
            }
        }
        self.separators += separators;
        self.arrays += arrays;
        self.objects += objects;
        self.strings += strings;
    }

    /// The text's length so far.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// What the text costs decoded and parsed, with `wire` bytes of body received: the
    /// body, two copies of the text, [`VALUE_BYTES`] a value, and [`STRING_BYTES`],
    /// [`ARRAY_BYTES`] and [`OBJECT_BYTES`] more for each string, array and object.
    pub(crate) fn cost(&self, wire: usize) -> usize {
        wire.saturating_add(self.bytes.saturating_mul(2))
            .saturating_add((self.separators + 1).saturating_mul(VALUE_BYTES))
            .saturating_add(self.arrays.saturating_mul(ARRAY_BYTES))
            .saturating_add(self.objects.saturating_mul(OBJECT_BYTES))
            .saturating_add(self.strings.saturating_mul(STRING_BYTES))
    }
}

impl Scan {
    /// [`Scan::cost`] of a text inflated into a buffer as it is priced: the buffer grows
    /// by doubling, so while it grows the text may be held once more (a copy, or spare
    /// capacity) than a text that arrived whole.
    pub(crate) fn cost_inflated(&self, wire: usize) -> usize {
        self.cost(wire).saturating_add(self.bytes)
    }
}

/// [`Scan::cost`] of the whole `text`.
pub(crate) fn of_text(text: &[u8], wire: usize) -> usize {
    let mut scan = Scan::default();
    scan.feed(text);
    scan.cost(wire)
}

/// What [`inflate_priced`] made of a gzip body.
#[derive(Debug)]
pub(crate) enum Inflated {
    /// The whole text, each piece paid for before it was kept (the last payment was its
    /// whole price).
    Kept(Vec<u8>),
    /// The scan alone: a piece was not paid for, so nothing was kept from then on. The
    /// scan stops early once the text is longer than the cap or its price is above the
    /// most anything may cost.
    Scanned(Scan),
}

/// Inflates the gzip `body` once, pricing its text as it comes and keeping it while `pay`
/// accepts the price so far (called before each piece is kept, with the running
/// [`Scan::cost`]): the body is priced and decoded in one pass, and no byte is held that
/// was not paid for first. Once `pay` refuses, the text is dropped and only counted on, so
/// that the caller learns the whole price to wait for. Stops once the text is more than
/// `cap` bytes or its price more than `most` (the caller refuses those without the rest).
///
/// # Errors
///
/// A body that is not gzip, or whose data or trailer is corrupt.
pub(crate) fn inflate_priced(
    body: &[u8],
    cap: usize,
    most: usize,
    mut pay: impl FnMut(usize) -> bool,
) -> std::io::Result<Inflated> {
    let wire = body.len();
    let mut scan = Scan::default();
    let mut kept = Some(Vec::new());
    crate::wire::gzip::inflate_each(body, cap, |piece| {
        scan.feed(piece);
        let price = scan.cost_inflated(wire);
        if price > most {
            return false;
        }
        if let Some(text) = kept.as_mut() {
            if pay(price) {
                text.extend_from_slice(piece);
            } else {
                kept = None;
            }
        }
        true
    })?;
    Ok(match kept {
        Some(text) if scan.bytes() <= cap && scan.cost_inflated(wire) <= most => {
            Inflated::Kept(text)
        }
        _ => Inflated::Scanned(scan),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_counted_outside_strings_only() {
        let mut s = Scan::default();
        let text = br#"{"data": [0, 1, "a,b:[{", "\"", {"k": 2}]}"#;
        s.feed(text);
        // { : [ , , , , { : — the commas and brackets in the strings are not counted.
        assert_eq!(s.separators, 9);
        assert_eq!((s.arrays, s.objects), (1, 2));
        assert_eq!(s.bytes(), text.len());
    }

    #[test]
    fn chunking_does_not_change_the_count() {
        let text = br#"{"data": ["x\\\",y", [1,2], {"a":"b"}]}"#;
        let whole = of_text(text, 0);
        for split in 1..text.len() {
            let mut s = Scan::default();
            s.feed(&text[..split]);
            s.feed(&text[split..]);
            assert_eq!(s.cost(0), whole, "split at {split}");
        }
    }

    fn gz(text: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflating_keeps_what_is_paid_for_and_prices_the_rest() {
        let text = format!("{{\"data\":[0{}]}}", ",0".repeat(99_999));
        let body = gz(text.as_bytes());
        let price = of_text(text.as_bytes(), body.len()) + text.len();
        let mut paid = Vec::new();
        match inflate_priced(&body, usize::MAX - 1, usize::MAX, |p| {
            paid.push(p);
            true
        })
        .unwrap()
        {
            Inflated::Kept(kept) => assert_eq!(kept, text.as_bytes()),
            other => panic!("{other:?}"),
        }
        // Asked before each piece, the price so far, ending at the whole price.
        assert!(paid.len() > 1 && paid.is_sorted(), "{paid:?}");
        assert_eq!(paid.last(), Some(&price));
        // Refused once: the rest is only counted, to its end.
        let mut asked = 0;
        match inflate_priced(&body, usize::MAX - 1, usize::MAX, |_| {
            asked += 1;
            asked == 1
        })
        .unwrap()
        {
            Inflated::Scanned(scan) => assert_eq!(scan.cost_inflated(body.len()), price),
            other => panic!("{other:?}"),
        }
        assert_eq!(asked, 2);
        // Past the cap, or past the most it may cost: stopped early.
        for (cap, most) in [(1000, usize::MAX), (usize::MAX - 1, 100_000)] {
            match inflate_priced(&body, cap, most, |_| true).unwrap() {
                Inflated::Scanned(scan) => assert!(scan.bytes() < text.len()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn small_numbers_cost_far_more_than_their_text() {
        let zeros = format!("{{\"data\":[0{}]}}", ",0".repeat(999));
        let text = format!("{{\"data\":\"{}\"}}", "x".repeat(2000));
        assert!(of_text(zeros.as_bytes(), 0) > 30 * zeros.len());
        assert!(of_text(text.as_bytes(), 0) < 3 * text.len());
    }
}

/// Measures the estimate against what decoding takes: each shape is decoded in a process
/// of its own (this test binary, run again for one shape), whose peak resident memory
/// (`VmHWM`) while it decodes the body and parses its `data` as a `Value` is compared
/// with the body's estimate.
#[cfg(test)]
mod estimate_tests {
    use std::io::Write;

    use super::*;
    use crate::wire::envelope::{self, Limits};

    /// How many items each shape has.
    const ITEMS: usize = 100_000;

    /// The variable that makes [`one_shape`] measure: `INDEX,gzip` or `INDEX,plain`.
    const SHAPE_VAR: &str = "WORKER_KIT_DECODE_COST_SHAPE";

    /// `(name, before the items, one item with # for its index, after)`: `{"data": …}`.
    const SHAPES: &[(&str, &str, &str, &str)] = &[
        ("small numbers", "[", "0", "]"),
        ("numbers", "[", "#", "]"),
        ("floats", "[", "1.5", "]"),
        ("one-element arrays", "[", "[0]", "]"),
        ("empty arrays", "[", "[]", "]"),
        ("empty objects", "[", "{}", "]"),
        ("short strings", "[", "\"a\"", "]"),
        ("small objects", "[", "{\"a\":#,\"b\":true}", "]"),
        ("one wide object", "{", "\"k#\":0", "}"),
        (
            "long strings",
            "[",
            "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
            "]",
        ),
    ];

    /// A `/proc/self/status` value, in bytes.
    fn status(field: &str) -> usize {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = text.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
            * 1024
    }

    /// Hands shape `i`'s text to `put` piece by piece.
    fn pieces(i: usize, mut put: impl FnMut(&[u8])) {
        let (_, before, item, after) = SHAPES[i];
        put(b"{\"data\":");
        put(before.as_bytes());
        for n in 0..ITEMS {
            if n > 0 {
                put(b",");
            }
            put(item.replace('#', &n.to_string()).as_bytes());
        }
        put(after.as_bytes());
        put(b"}");
    }

    /// Shape `i`'s body, gzip or plain, and its text's scan; no copy of the text outlives
    /// it.
    fn body_of(i: usize, gzip: bool) -> (Vec<u8>, Scan) {
        let mut scan = Scan::default();
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            pieces(i, |p| {
                scan.feed(p);
                enc.write_all(p).unwrap();
            });
            (enc.finish().unwrap(), scan)
        } else {
            let mut body = Vec::new();
            pieces(i, |p| {
                scan.feed(p);
                body.extend_from_slice(p);
            });
            (body, scan)
        }
    }

    /// Run by [`the_estimate_covers_what_decoding_takes`] in a process of its own; does
    /// nothing otherwise.
    #[test]
    fn one_shape() {
        let Ok(which) = std::env::var(SHAPE_VAR) else {
            return;
        };
        let (i, encoding) = which.split_once(',').unwrap();
        let (body, scan) = body_of(i.parse().unwrap(), encoding == "gzip");
        let limits = Limits {
            max_message_bytes: usize::MAX,
            max_decoded_bytes: usize::MAX - 1,
        };
        let base = status("VmRSS");
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        // As the workers decode it: a gzip body in the one pass that prices it.
        let request = if encoding == "gzip" {
            match inflate_priced(&body, usize::MAX - 1, usize::MAX, |_| true).unwrap() {
                Inflated::Kept(text) => {
                    envelope::request_from_bytes(text, envelope::Encoding::Gzip).unwrap()
                }
                Inflated::Scanned(_) => unreachable!("every piece was paid for"),
            }
        } else {
            envelope::decode_request(&body, &limits).unwrap()
        };
        let value: serde_json::Value = serde_json::from_str(request.data.get()).unwrap();
        let peak = status("VmHWM").saturating_sub(base);
        drop((value, request));
        println!(
            "MEASURED text={} peak={} estimate={}",
            scan.bytes(),
            peak + body.len(),
            if encoding == "gzip" {
                scan.cost_inflated(body.len())
            } else {
                scan.cost(body.len())
            }
        );
    }

    #[test]
    fn the_estimate_covers_what_decoding_takes() {
        let exe = std::env::current_exe().unwrap();
        for (i, (name, ..)) in SHAPES.iter().enumerate() {
            for encoding in ["gzip", "plain"] {
                let out = std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "wire::cost::estimate_tests::one_shape",
                        "--nocapture",
                    ])
                    .env(SHAPE_VAR, format!("{i},{encoding}"))
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                let line = stdout
                    .lines()
                    .find(|l| l.starts_with("MEASURED"))
                    .unwrap_or_else(|| {
                        panic!("{name}: {stdout} {}", String::from_utf8_lossy(&out.stderr))
                    });
                let field = |k: &str| -> usize {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .unwrap()
                        .parse()
                        .unwrap()
                };
                let (text, peak, estimate) = (field("text="), field("peak="), field("estimate="));
                eprintln!(
                    "{name} ({encoding}): {text} bytes of text, peak {peak} ({:.1} a byte), estimate {estimate} ({:.1} a byte)",
                    peak as f64 / text as f64,
                    estimate as f64 / text as f64,
                );
                assert!(
                    peak <= estimate,
                    "{name} ({encoding}): decoding took {peak} bytes, more than the estimate of {estimate}"
                );
            }
        }
    }
}
