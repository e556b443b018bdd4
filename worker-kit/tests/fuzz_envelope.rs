//! Property tests over the wire codec: no input makes the decoders panic, and whatever the
//! kit encodes it decodes to the same value. Failing cases are kept by proptest in
//! `proptest-regressions/` (commit them) and replayed first on every run.

use proptest::prelude::*;
use serde_json::Value;
use worker_kit::ErrorReply;
use worker_kit::wire::envelope::{
    Encoding, Limits, Reply, decode_reply, decode_request, encode_error, encode_request,
    encode_success,
};

fn limits() -> Limits {
    Limits {
        max_message_bytes: 64 * 1024,
        max_decoded_bytes: 64 * 1024,
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "tests/fuzz_envelope.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn decoders_never_panic_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(&body, &limits());
        let _ = decode_reply(&body, &limits());
        let _ = decode_request(&gzip(&body), &limits());
        let _ = decode_reply(&gzip(&body), &limits());
    }

    #[test]
    fn decoders_never_panic_on_near_json(text in r#"[\{\}\[\]":,a-z0-9 \\]{0,200}"#) {
        let _ = decode_request(text.as_bytes(), &limits());
        let _ = decode_reply(text.as_bytes(), &limits());
    }

    #[test]
    fn gzip_with_a_flipped_byte_is_an_error_not_a_panic(v in json_value(), at in any::<prop::sample::Index>(), flip in 1u8..) {
        let mut body = encode_request(&v, Encoding::Gzip).unwrap();
        let i = at.index(body.len());
        body[i] ^= flip;
        let _ = decode_request(&body, &limits());
    }

    #[test]
    fn requests_round_trip(v in json_value(), gz in any::<bool>()) {
        let enc = if gz { Encoding::Gzip } else { Encoding::Plain };
        let body = encode_request(&v, enc).unwrap();
        let req = decode_request(&body, &limits()).unwrap();
        prop_assert_eq!(req.encoding, enc);
        let back: Value = serde_json::from_str(req.data.get()).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn replies_round_trip(v in json_value(), gz in any::<bool>()) {
        let enc = if gz { Encoding::Gzip } else { Encoding::Plain };
        let body = encode_success(&serde_json::to_vec(&v).unwrap(), enc);
        match decode_reply(&body, &limits()).unwrap() {
            Reply::Success(raw) => prop_assert_eq!(serde_json::from_str::<Value>(raw.get()).unwrap(), v),
            Reply::Error(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }

    #[test]
    fn error_replies_round_trip(kind in "[A-Za-z]{1,20}", message in ".{0,80}", args in prop::collection::vec(json_value(), 0..4)) {
        let err = ErrorReply::new(kind.clone(), message.clone()).with_args(args.clone());
        let body = encode_error(&err, false, Encoding::Gzip);
        match decode_reply(&body, &limits()).unwrap() {
            Reply::Error(e) => {
                prop_assert_eq!(e.error_type, kind);
                prop_assert_eq!(e.message, message);
                prop_assert_eq!(e.args, args);
                prop_assert_eq!(e.trace, "");
            }
            Reply::Success(_) => prop_assert!(false, "expected an error"),
        }
    }
}
