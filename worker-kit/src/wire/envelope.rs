//! The wire format (docs/protocol.md): gzip(UTF-8(JSON)) bodies, `{"data": ...}` requests and
//! `{"success": ..., "data" | "error": ...}` replies.
//!
//! Decoding never trusts its input: sizes are capped before and after gunzip, UTF-8 and
//! JSON are checked, and every failure says which of these went wrong.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::wire::reply_error::ErrorReply;

/// The two body encodings a peer may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// gzip-compressed JSON (what the Python seed sends).
    Gzip,
    /// Plain JSON (e.g. published by hand from the management UI).
    Plain,
}

impl Encoding {
    /// The encoding of `body`, recognised by the gzip magic bytes.
    pub fn detect(body: &[u8]) -> Self {
        if body.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else {
            Self::Plain
        }
    }

    /// The AMQP `content_encoding` property for this encoding.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Self::Gzip => Some("gzip"),
            Self::Plain => None,
        }
    }
}

/// Size caps applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body accepted as received.
    pub max_message_bytes: usize,
    /// Largest body after gunzip.
    pub max_decoded_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 8 * 1024 * 1024,
            max_decoded_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Why a body could not be decoded. Each becomes a `BadRequest` reply (RPC) or a parked
/// message (work queue); the message names the layer that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is larger than [`Limits::max_message_bytes`].
    #[error("message body is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body starts like gzip but does not decompress.
    #[error("body is not valid gzip: {0}")]
    Gzip(#[source] std::io::Error),
    /// The decompressed body is larger than [`Limits::max_decoded_bytes`].
    #[error("decompressed body exceeds the limit of {limit} bytes")]
    DecodedTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8.
    #[error("body is not valid UTF-8: {0}")]
    Utf8(#[source] std::str::Utf8Error),
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The JSON does not have the envelope's shape.
    #[error("body is not a request envelope ({0}); expected {{\"data\": <any JSON value>}}")]
    Envelope(String),
    /// A reply's JSON does not have the reply envelope's shape.
    #[error("reply is not a reply envelope ({0})")]
    ReplyEnvelope(String),
}

impl DecodeError {
    /// The error reply a caller receives for this failure.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply::bad_request(self.to_string())
    }
}

/// A decoded request: the raw JSON of its `data` member, and how the body was encoded
/// (so the reply can use the same encoding).
#[derive(Debug)]
pub struct Request {
    /// The value of `data`, still as JSON text, deserialized by the handler's extractor.
    pub data: Box<RawValue>,
    /// How the request body was encoded.
    pub encoding: Encoding,
    /// The body has a top-level `success` key: it is shaped like a reply, which a server
    /// must never take for a request.
    pub reply_shaped: bool,
}

#[derive(Deserialize)]
struct RequestShape<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default, deserialize_with = "present")]
    success: bool,
}

/// `true` whenever the key is there, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(true)
}

#[derive(Serialize)]
struct RequestOut<'a, T: ?Sized> {
    data: &'a T,
}

/// Decodes gzip or plain bytes into UTF-8 JSON text, within `limits`.
///
/// # Errors
///
/// [`DecodeError::TooLarge`], [`DecodeError::Gzip`], [`DecodeError::DecodedTooLarge`] or
/// [`DecodeError::Utf8`].
pub fn decode_text(body: &[u8], limits: &Limits) -> Result<(String, Encoding), DecodeError> {
    if body.len() > limits.max_message_bytes {
        return Err(DecodeError::TooLarge {
            size: body.len(),
            limit: limits.max_message_bytes,
        });
    }
    let encoding = Encoding::detect(body);
    let bytes = match encoding {
        Encoding::Gzip => {
            // Inflating stops one byte past the cap: a body that fills it exactly is
            // allowed, one that goes past it is a bomb (or just too big).
            let out = crate::wire::gzip::decompress(body, limits.max_decoded_bytes)
                .map_err(DecodeError::Gzip)?;
            if out.len() > limits.max_decoded_bytes {
                return Err(DecodeError::DecodedTooLarge {
                    limit: limits.max_decoded_bytes,
                });
            }
            out
        }
        Encoding::Plain => {
            if body.len() > limits.max_decoded_bytes {
                return Err(DecodeError::DecodedTooLarge {
                    limit: limits.max_decoded_bytes,
                });
            }
            body.to_vec()
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| DecodeError::Utf8(e.utf8_error()))?;
    Ok((text, encoding))
}

/// Decodes a request body into its `data`.
///
/// # Errors
///
/// Any [`DecodeError`]: size, gzip, UTF-8, JSON syntax, or a JSON value that is not an
/// object with a `data` member.
pub fn decode_request(body: &[u8], limits: &Limits) -> Result<Request, DecodeError> {
    let (text, encoding) = decode_text(body, limits)?;
    request_from_text(&text, encoding)
}

/// The request in `bytes`, the body already gunzipped (within the limits) when `encoding`
/// is gzip.
///
/// # Errors
///
/// [`DecodeError::Utf8`], or those of JSON and the envelope as [`decode_request`].
pub(crate) fn request_from_bytes(
    bytes: Vec<u8>,
    encoding: Encoding,
) -> Result<Request, DecodeError> {
    let text = String::from_utf8(bytes).map_err(|e| DecodeError::Utf8(e.utf8_error()))?;
    request_from_text(&text, encoding)
}

fn request_from_text(text: &str, encoding: Encoding) -> Result<Request, DecodeError> {
    let shape: RequestShape<'_> = serde_json::from_str(text).map_err(classify)?;
    // serde also reads a struct from a JSON array; the envelope is an object only.
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::Envelope(
            "the body is not a JSON object".into(),
        ));
    }
    Ok(Request {
        data: shape.data.to_owned(),
        encoding,
        reply_shaped: shape.success,
    })
}

fn classify(e: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => DecodeError::Envelope(e.to_string()),
        Category::Io | Category::Syntax | Category::Eof => DecodeError::Json(e),
    }
}

/// Encodes `data` as a request body `{"data": data}` in `encoding`.
///
/// # Errors
///
/// When `data` cannot be serialized as JSON (e.g. a map with non-string keys).
pub fn encode_request<T: Serialize + ?Sized>(
    data: &T,
    encoding: Encoding,
) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(&RequestOut { data })?;
    Ok(finish(json, encoding))
}

/// Encodes a success reply around already-serialized `data` JSON.
pub fn encode_success(data_json: &[u8], encoding: Encoding) -> Vec<u8> {
    let mut json = Vec::with_capacity(data_json.len() + 28);
    json.extend_from_slice(b"{\"success\":true,\"data\":");
    json.extend_from_slice(data_json);
    json.push(b'}');
    finish(json, encoding)
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    success: bool,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    error_type: &'a str,
    message: &'a str,
    args: &'a [serde_json::Value],
    trace: String,
}

/// Encodes an error reply. `with_trace` (development mode) includes the error's source
/// chain in `trace`; otherwise `trace` is empty.
pub fn encode_error(err: &ErrorReply, with_trace: bool, encoding: Encoding) -> Vec<u8> {
    let out = ErrorOut {
        success: false,
        error: ErrorBody {
            error_type: &err.error_type,
            message: &err.message,
            args: &err.args,
            trace: if with_trace {
                err.trace.join("\ncaused by: ")
            } else {
                String::new()
            },
        },
    };
    // Serializing these plain strings and JSON values cannot fail.
    let json = serde_json::to_vec(&out).unwrap_or_else(|_| {
        br#"{"success":false,"error":{"type":"Internal","message":"internal error","args":[],"trace":""}}"#.to_vec()
    });
    finish(json, encoding)
}

fn finish(json: Vec<u8>, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Plain => json,
        Encoding::Gzip => crate::wire::gzip::compress(&json),
    }
}

/// A decoded reply.
#[derive(Debug)]
pub enum Reply {
    /// `success: true`; the raw JSON of `data`.
    Success(Box<RawValue>),
    /// `success: false`; the remote error.
    Error(RemoteError),
}

/// The `error` object of a failed reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteError {
    /// `error.type`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// `error.message`.
    #[serde(default)]
    pub message: String,
    /// `error.args`.
    #[serde(default)]
    pub args: Vec<serde_json::Value>,
    /// `error.trace`: empty unless the remote service runs in development mode.
    #[serde(default)]
    pub trace: String,
}

#[derive(Deserialize)]
struct ReplyShape<'a> {
    success: bool,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RemoteError>,
}

/// Decodes a reply body.
///
/// # Errors
///
/// Any [`DecodeError`]; a JSON value without a boolean `success` (or a failure without an
/// `error` object) is [`DecodeError::ReplyEnvelope`].
pub fn decode_reply(body: &[u8], limits: &Limits) -> Result<Reply, DecodeError> {
    let (text, _) = decode_text(body, limits)?;
    let shape: ReplyShape<'_> = serde_json::from_str(&text).map_err(|e| match classify(e) {
        DecodeError::Envelope(m) => DecodeError::ReplyEnvelope(m),
        other => other,
    })?;
    if shape.success {
        // `"data": null` comes back from serde as None: both mean null.
        let data = match shape.data {
            Some(raw) => raw.to_owned(),
            None => RawValue::from_string("null".to_owned()).map_err(DecodeError::Json)?,
        };
        Ok(Reply::Success(data))
    } else {
        shape.error.map(Reply::Error).ok_or_else(|| {
            DecodeError::ReplyEnvelope("success is false but error is missing".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use serde_json::json;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        finish(bytes.to_vec(), Encoding::Gzip)
    }

    fn gunzip(bytes: &[u8]) -> String {
        decode_text(bytes, &Limits::default()).unwrap().0
    }

    #[test]
    fn gzip_request_round_trip() {
        let body = encode_request(&json!({"name": "Ada"}), Encoding::Gzip).unwrap();
        assert_eq!(Encoding::detect(&body), Encoding::Gzip);
        let req = decode_request(&body, &Limits::default()).unwrap();
        assert_eq!(req.encoding, Encoding::Gzip);
        assert_eq!(req.data.get(), r#"{"name":"Ada"}"#);
    }

    #[test]
    fn plain_request_is_accepted() {
        let req = decode_request(br#"{"data": [1, 2]}"#, &Limits::default()).unwrap();
        assert_eq!(req.encoding, Encoding::Plain);
        assert_eq!(req.data.get(), "[1, 2]");
    }

    #[test]
    fn a_success_key_marks_a_reply() {
        let limits = Limits::default();
        for body in [
            &br#"{"success": true, "data": 1}"#[..],
            br#"{"data": 1, "success": null}"#,
        ] {
            assert!(decode_request(body, &limits).unwrap().reply_shaped);
        }
        assert!(
            !decode_request(br#"{"data": {"success": 1}}"#, &limits)
                .unwrap()
                .reply_shaped
        );
    }

    #[test]
    fn null_data_is_allowed() {
        let req = decode_request(&gzip(br#"{"data": null}"#), &Limits::default()).unwrap();
        assert_eq!(req.data.get(), "null");
    }

    #[test]
    fn truncated_gzip_is_rejected() {
        let body = gzip(br#"{"data": "x"}"#);
        let err = decode_request(&body[..body.len() / 2], &Limits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip(_)), "{err}");
        assert!(err.to_string().starts_with("body is not valid gzip"));
    }

    #[test]
    fn gzip_magic_with_garbage_is_rejected() {
        let err = decode_request(&[0x1f, 0x8b, 1, 2, 3], &Limits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Gzip(_)), "{err}");
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let err = decode_request(&gzip(b"{\"data\": \"\xff\"}"), &Limits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Utf8(_)), "{err}");
        let err = decode_request(b"{\"data\": \"\xc3\"}", &Limits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Utf8(_)), "{err}");
    }

    #[test]
    fn invalid_json_is_rejected() {
        let err = decode_request(&gzip(b"{\"data\": "), &Limits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err}");
        let err = decode_request(b"not json", &Limits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err}");
    }

    #[test]
    fn wrong_envelope_is_rejected() {
        for body in [
            &br#"{"payload": 1}"#[..],
            br#"["data"]"#,
            br#""data""#,
            b"42",
        ] {
            let err = decode_request(body, &Limits::default()).unwrap_err();
            assert!(matches!(err, DecodeError::Envelope(_)), "{err}");
            assert!(
                err.to_string()
                    .contains(r#"expected {"data": <any JSON value>}"#)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_by_the_payload_not_overflowed() {
        // The envelope keeps `data` as raw text (no recursion); turning it into a value
        // stops at serde_json's recursion limit instead of overflowing the stack.
        let deep = format!(
            "{{\"data\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let req = decode_request(deep.as_bytes(), &Limits::default()).unwrap();
        let err = crate::handler::extract::parse_payload::<serde_json::Value>(req.data.get())
            .unwrap_err();
        assert_eq!(err.error_type, "ValidationError");
        assert!(err.message.contains("recursion limit"), "{}", err.message);
    }

    #[test]
    fn oversized_body_is_rejected() {
        let limits = Limits {
            max_message_bytes: 10,
            max_decoded_bytes: 100,
        };
        let err = decode_request(br#"{"data": "0123456789"}"#, &limits).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLarge {
                    size: 22,
                    limit: 10
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn gzip_bomb_stops_at_the_cap() {
        let zeros = vec![b' '; 50 * 1024 * 1024];
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&zeros).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 100 * 1024, "a bomb is small on the wire");
        let limits = Limits {
            max_message_bytes: 1024 * 1024,
            max_decoded_bytes: 1024 * 1024,
        };
        let err = decode_request(&bomb, &limits).unwrap_err();
        assert!(
            matches!(err, DecodeError::DecodedTooLarge { limit: 1_048_576 }),
            "{err}"
        );
    }

    #[test]
    fn body_exactly_at_the_cap_is_fine() {
        let body = br#"{"data":1}"#;
        let limits = Limits {
            max_message_bytes: 1024,
            max_decoded_bytes: body.len(),
        };
        assert!(decode_request(&gzip(body), &limits).is_ok());
    }

    #[test]
    fn success_reply_shape() {
        let body = encode_success(br#"{"a":1}"#, Encoding::Gzip);
        assert_eq!(gunzip(&body), r#"{"success":true,"data":{"a":1}}"#);
        match decode_reply(&body, &Limits::default()).unwrap() {
            Reply::Success(raw) => assert_eq!(raw.get(), r#"{"a":1}"#),
            Reply::Error(e) => panic!("unexpected error {e:?}"),
        }
    }

    #[test]
    fn error_reply_shape_without_trace_in_production() {
        let err = ErrorReply::not_found("no item 7")
            .with_args(vec![json!(7)])
            .with_trace(&std::io::Error::other("db said no"));
        let body = encode_error(&err, false, Encoding::Plain);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"success": false, "error": {"type": "NotFound", "message": "no item 7", "args": [7], "trace": ""}})
        );
        let body = encode_error(&err, true, Encoding::Plain);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["trace"], "db said no");
    }

    #[test]
    fn error_reply_decodes() {
        let body = encode_error(&ErrorReply::conflict("taken"), false, Encoding::Gzip);
        match decode_reply(&body, &Limits::default()).unwrap() {
            Reply::Error(e) => {
                assert_eq!(e.error_type, "Conflict");
                assert_eq!(e.message, "taken");
            }
            Reply::Success(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn python_style_reply_decodes() {
        // aio-pika side: json.dumps with spaces, no content_encoding, gzip.
        let body = gzip(br#"{"success": true, "data": "Hello world!"}"#);
        match decode_reply(&body, &Limits::default()).unwrap() {
            Reply::Success(raw) => assert_eq!(raw.get(), r#""Hello world!""#),
            Reply::Error(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(matches!(
            decode_reply(br#"{"data": 1}"#, &Limits::default()),
            Err(DecodeError::ReplyEnvelope(_))
        ));
        assert!(matches!(
            decode_reply(br#"{"success": false}"#, &Limits::default()),
            Err(DecodeError::ReplyEnvelope(_))
        ));
    }

    #[test]
    fn nan_is_never_emitted() {
        let body = encode_request(&f64::NAN, Encoding::Plain).unwrap();
        assert_eq!(body, br#"{"data":null}"#);
    }
}
