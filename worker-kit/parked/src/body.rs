//! A parked message's body as a person reads it: gunzipped when it is gzip (by its
//! `content_encoding` or its first bytes), pretty JSON when it parses.

use std::io::Read as _;

use flate2::read::GzDecoder;

/// The largest body shown after gunzip: a parked message may be a gzip bomb.
const MAX_SHOWN_BYTES: u64 = 8 * 1024 * 1024;

/// `data` as text for the terminal.
pub(crate) fn shown(content_encoding: Option<&str>, data: &[u8]) -> String {
    let gzip = content_encoding.is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
        || data.starts_with(&[0x1f, 0x8b]);
    let plain = if gzip {
        let mut out = Vec::new();
        let read = GzDecoder::new(data)
            .take(MAX_SHOWN_BYTES + 1)
            .read_to_end(&mut out);
        match read {
            Err(e) => return format!("<{} bytes of gzip that do not decode: {e}>", data.len()),
            Ok(_) if out.len() as u64 > MAX_SHOWN_BYTES => {
                return format!(
                    "<{} bytes of gzip that decode to more than {MAX_SHOWN_BYTES} bytes; not shown>",
                    data.len()
                );
            }
            Ok(_) => out,
        }
    } else {
        data.to_vec()
    };
    match serde_json::from_slice::<serde_json::Value>(&plain) {
        Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
        Err(_) => match String::from_utf8(plain) {
            Ok(text) => text,
            Err(e) => format!("<{} bytes, not UTF-8 text>", e.as_bytes().len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_json_is_shown_pretty() {
        let body = gzip(br#"{"data":{"a":1}}"#);
        assert_eq!(
            shown(Some("gzip"), &body),
            "{\n  \"data\": {\n    \"a\": 1\n  }\n}"
        );
        assert_eq!(
            shown(None, &body),
            shown(Some("gzip"), &body),
            "by its magic bytes"
        );
    }

    #[test]
    fn plain_text_bad_gzip_and_bytes() {
        assert_eq!(shown(None, b"not json"), "not json");
        assert!(shown(Some("gzip"), b"\x1f\x8bjunk").contains("do not decode"));
        assert!(shown(None, &[0xff, 0xfe]).contains("2 bytes, not UTF-8"));
    }
}
