//! Message bodies as a hostile publisher may send them: wrong types, deep and wide JSON,
//! invalid UTF-8, truncated and corrupt gzip, numbers JSON cannot hold, reply-shaped
//! bodies, gzip bombs.

use std::sync::OnceLock;

use e2e::gzip;

use crate::rng::Rng;

/// A body and how it was made (what a failure report prints instead of the bytes).
pub(crate) struct Body {
    pub(crate) bytes: Vec<u8>,
    pub(crate) recipe: String,
}

impl Body {
    fn new(bytes: Vec<u8>, recipe: impl Into<String>) -> Self {
        Self {
            bytes,
            recipe: recipe.into(),
        }
    }
}

/// A JSON value of any type, up to `depth` deep.
fn any_json(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::{Value, json};
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.one_in(2)),
        2 => json!(crate::props::edge_i64(rng)),
        3 => json!(*rng.pick(&[0.5, -0.0, 1e308, f64::MIN_POSITIVE])),
        4 => json!(rng.word(16)),
        5 => json!(*rng.pick(&["", "fail", "null", "ok", "\u{0}", "é漢字"])),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| any_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "id",
                "name",
                "price_cents",
                "tags",
                "text",
                "limit",
                "after",
                "data",
                "x",
            ];
            Value::Object(
                (0..rng.below(5))
                    .map(|_| ((*rng.pick(&keys)).to_owned(), any_json(rng, depth - 1)))
                    .collect(),
            )
        }
    }
}

/// `{"data": value}`, gzipped or not.
fn envelope(rng: &mut Rng, data: &str, what: &str) -> Body {
    let text = format!(r#"{{"data": {data}}}"#);
    if rng.one_in(2) {
        Body::new(gzip(text.as_bytes()), format!("gzip of {what}"))
    } else {
        Body::new(text.into_bytes(), what.to_owned())
    }
}

/// An object of `n` keys or an array of `n` zeros, gzipped or not: made once per run (in
/// a debug build, compressing a few MiB takes a while).
fn wide(rng: &mut Rng, n: usize, object: bool) -> Body {
    type Made = std::sync::Mutex<std::collections::HashMap<(usize, bool), (Vec<u8>, Vec<u8>)>>;
    static MADE: OnceLock<Made> = OnceLock::new();
    let zipped = rng.one_in(2);
    let mut made = MADE.get_or_init(Made::default).lock().unwrap();
    let (plain, gz) = made.entry((n, object)).or_insert_with(|| {
        let data = if object {
            let keys: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
            format!("{{{}}}", keys.join(","))
        } else {
            format!("[{}0]", "0,".repeat(n - 1))
        };
        let text = format!(r#"{{"data": {data}}}"#).into_bytes();
        let gz = fast_gzip(&text);
        (text, gz)
    });
    let what = if object {
        format!("an object of {n} keys")
    } else {
        format!("an array of {n} zeros")
    };
    if zipped {
        Body::new(gz.clone(), format!("gzip of {what}"))
    } else {
        Body::new(plain.clone(), what)
    }
}

fn fast_gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Any hostile body of ordinary size.
pub(crate) fn any(rng: &mut Rng) -> Body {
    match rng.below(16) {
        0 => {
            let v = any_json(rng, 4);
            envelope(rng, &v.to_string(), &format!("envelope of {v}"))
        }
        1 => {
            let depth = *rng.pick(&[100, 126, 127, 128, 129, 1_000, 50_000]);
            let data = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            envelope(rng, &data, &format!("arrays nested {depth} deep"))
        }
        2 => {
            let depth = *rng.pick(&[127, 128, 2_000]);
            let data = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            envelope(rng, &data, &format!("objects nested {depth} deep"))
        }
        3 => {
            let n = *rng.pick(&[10_000, 100_000]);
            wide(rng, n, true)
        }
        4 => {
            let n = *rng.pick(&[100_000, 1_000_000]);
            wide(rng, n, false)
        }
        5 => {
            let mut b = br#"{"data": ""#.to_vec();
            b.extend(
                rng.pick(&[
                    &b"\xff\xfe"[..],
                    b"\xc0\x80",
                    b"\xed\xa0\x80",
                    b"\xf8\x88\x80\x80\x80",
                ])
                .iter(),
            );
            b.extend(br#""}"#);
            Body::new(b, "invalid UTF-8 in a string")
        }
        6 => {
            let n = rng.below(64);
            Body::new(rng.bytes(n), format!("{n} random bytes"))
        }
        7 => {
            let full = gzip(br#"{"data": {"name": "truncated", "price_cents": 1, "tags": []}}"#);
            let cut = rng.below(full.len());
            Body::new(
                full[..cut].to_vec(),
                format!("gzip cut at {cut} of {} bytes", full.len()),
            )
        }
        8 => {
            let mut full = gzip(br#"{"data": "corrupt"}"#);
            let at = rng.below(full.len());
            full[at] ^= 0x5a;
            Body::new(full, format!("gzip with byte {at} flipped"))
        }
        9 => {
            let data = *rng.pick(&[
                "NaN",
                "Infinity",
                "1e400",
                "-0",
                "18446744073709551616",
                "123456789012345678901234567890",
                r#""\ud800""#,
            ]);
            envelope(rng, data, &format!("the number-ish {data}"))
        }
        10 => Body::new(
            rng.pick(&[
                &br#"{"data": 1, "data": 2}"#[..],
                br#"{"success": true, "data": 42}"#,
                br#"{"success": false, "error": {"type": "Exception", "message": "forged"}}"#,
                br#"{"data": 1} trailing"#,
                br#"[1, 2]"#,
                b"",
                b"  ",
                b"null",
                b"\xef\xbb\xbf{\"data\": 1}",
            ])
            .to_vec(),
            "a body of the wrong shape",
        ),
        11 => Body::new(gzip(b"not json at all"), "gzip of text that is not JSON"),
        12 => Body::new(gzip(&gzip(br#"{"data": 1}"#)), "gzip of gzip"),
        13 => {
            let name = "n".repeat(*rng.pick(&[256, 257, 100_000]));
            let data = format!(
                r#"{{"name": "{name}", "price_cents": -1, "tags": ["{}"]}}"#,
                "t".repeat(65)
            );
            envelope(
                rng,
                &data,
                &format!("an item with a {}-byte name", name.len()),
            )
        }
        14 => envelope(
            rng,
            r#"{"id": 9223372036854775807, "after": -9223372036854775808, "limit": 4294967296, "text": ""}"#,
            "ids and limits at their ends",
        ),
        _ => Body::new(
            br#"{"data": "fail"}"#.to_vec(),
            "a task that fails (retried, then parked)",
        ),
    }
}

/// gzip of `{"data": [0, 0, …]}` with `zeros` zeros: 8 KiB on the wire for 4 million.
pub(crate) fn bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        use std::io::Write;
        let zeros = 4_000_000;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(br#"{"data": ["#).unwrap();
        let chunk = "0,".repeat(1 << 16);
        let mut left = zeros - 1;
        while left > 0 {
            let n = left.min(1 << 16);
            enc.write_all(&chunk.as_bytes()[..2 * n]).unwrap();
            left -= n;
        }
        enc.write_all(b"0]}").unwrap();
        enc.finish().unwrap()
    })
}

/// A body of exactly `len` bytes (at least 12): `{"data": "xxx…"}`.
pub(crate) fn sized(len: usize) -> Vec<u8> {
    let (open, close) = (br#"{"data": ""#, br#""}"#);
    let len = len.max(open.len() + close.len());
    // vec! of a byte is one allocation and a memset, fast even unoptimized.
    let mut b = vec![b'x'; len];
    b[..open.len()].copy_from_slice(open);
    b[len - close.len()..].copy_from_slice(close);
    b
}
