//! AMQP properties and header values as a hostile publisher may set them: every property,
//! every field-table value type, the kit's own headers with wrong types and edge values.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable, ShortString};

use crate::rng::Rng;

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Headers the kit reads: a peer can set every one of them.
pub(crate) const KIT_HEADERS: &[&str] = &[
    "x-deadline",
    "x-timeout-ms",
    "x-retry-count",
    "x-outbox-seq",
    "x-event-id",
    "x-occurred-at",
    "x-original-user-id",
    "x-original-route",
    "x-original-headers-dropped",
    "x-error-type",
    "x-error-message",
    "x-protocol",
    "traceparent",
    "tracestate",
    "x-death",
];

/// Integers at the edges that matter: zero, signs, 2³¹, 2³², 2⁵³, the type's ends, now
/// and the year 2100 in milliseconds.
pub(crate) fn edge_i64(rng: &mut Rng) -> i64 {
    let now = now_ms();
    *rng.pick(&[
        0,
        1,
        -1,
        i64::MAX,
        i64::MIN,
        i64::from(i32::MAX),
        i64::from(i32::MAX) + 1,
        i64::from(u32::MAX),
        i64::from(u32::MAX) + 1,
        1 << 53,
        now,
        now - 1,
        now + 1,
        now + 1_000,
        now + 2_000,
        now - 86_400_000,
        now + 5_000_000_000,
        4_102_444_800_000,
        4_102_444_800,
        5_000_000_000,
    ])
}

/// A value of any field-table type, nested at most `depth` deep. No `ShortString`: it has
/// no tag RabbitMQ reads in a table, so the broker would refuse the frame (that is the
/// publisher's connection, not a message that reaches a service).
pub(crate) fn any_value(rng: &mut Rng, depth: usize) -> AMQPValue {
    let kinds = if depth == 0 { 15 } else { 17 };
    match rng.below(kinds) {
        0 => AMQPValue::Boolean(rng.one_in(2)),
        1 => AMQPValue::ShortShortInt(rng.next_u64() as i8),
        2 => AMQPValue::ShortShortUInt(rng.next_u64() as u8),
        3 => AMQPValue::ShortInt(rng.next_u64() as i16),
        4 => AMQPValue::ShortUInt(rng.next_u64() as u16),
        5 => AMQPValue::LongInt(rng.next_u64() as i32),
        6 => AMQPValue::LongUInt(rng.next_u64() as u32),
        7 => AMQPValue::LongLongInt(edge_i64(rng)),
        8 => AMQPValue::Float(*rng.pick(&[0.0, -0.0, f32::NAN, f32::INFINITY, f32::MAX, 1.5])),
        9 => AMQPValue::Double(*rng.pick(&[
            0.0,
            f64::NAN,
            f64::NEG_INFINITY,
            1e300,
            -1.0,
            4_102_444_800_000.0,
        ])),
        10 => AMQPValue::DecimalValue(DecimalValue {
            scale: rng.next_u64() as u8,
            value: rng.next_u64() as u32,
        }),
        11 => AMQPValue::LongString(any_text(rng).into()),
        12 => {
            AMQPValue::Timestamp(*rng.pick(&[0, u64::MAX, now_ms() as u64 / 1000, now_ms() as u64]))
        }
        13 => {
            let n = rng.below(64);
            AMQPValue::ByteArray(rng.bytes(n).into())
        }
        14 => AMQPValue::Void,
        15 => {
            let n = rng.below(4);
            AMQPValue::FieldArray(FieldArray::from(
                (0..n)
                    .map(|_| any_value(rng, depth - 1))
                    .collect::<Vec<_>>(),
            ))
        }
        _ => AMQPValue::FieldTable(any_table(rng, depth - 1, 3)),
    }
}

/// A table of up to `width` entries, kit header names among the keys.
pub(crate) fn any_table(rng: &mut Rng, depth: usize, width: usize) -> FieldTable {
    let mut t = FieldTable::default();
    for _ in 0..rng.below(width + 1) {
        let key = if rng.one_in(2) {
            (*rng.pick(KIT_HEADERS)).to_owned()
        } else {
            rng.word(12)
        };
        t.insert(key.into(), any_value(rng, depth));
    }
    t
}

/// Text of some awkward shape: empty, long, control characters, invalid UTF-8, numbers.
pub(crate) fn any_text(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        0 => Vec::new(),
        1 => rng.word(20).into_bytes(),
        2 => b"\xff\xfe\xc0\x80".to_vec(),
        3 => "line\nforged=1\r\n\u{0}\u{1b}[31m".as_bytes().to_vec(),
        4 => "é漢字🦀\u{202e}".as_bytes().to_vec(),
        5 => edge_i64(rng).to_string().into_bytes(),
        6 => vec![b'z'; rng.between(256, 4096)],
        7 => "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .as_bytes()
            .to_vec(),
        _ => {
            let n = rng.below(40);
            rng.bytes(n)
        }
    }
}

/// A short string property of some awkward shape (at most 255 bytes: the frame's limit).
pub(crate) fn short_text(rng: &mut Rng) -> ShortString {
    let s = match rng.below(7) {
        0 => String::new(),
        1 => rng.word(20),
        2 => "z".repeat(255),
        3 => "é漢字🦀\u{202e}\n".to_owned(),
        4 => edge_i64(rng).to_string(),
        5 => "amq.gen-hostile".to_owned(),
        _ => "\u{0}\u{7f}".to_owned(),
    };
    s.into()
}

/// A value for `x-deadline` or `x-timeout-ms`: an edge integer in any numeric type, or as
/// text, a float, or a type that is no number at all.
pub(crate) fn deadline_value(rng: &mut Rng) -> AMQPValue {
    let n = edge_i64(rng);
    match rng.below(9) {
        0 => AMQPValue::LongInt(n as i32),
        1 => AMQPValue::LongUInt(n as u32),
        2 => AMQPValue::Timestamp(n as u64),
        3 => AMQPValue::LongString(n.to_string().into()),
        4 => AMQPValue::Double(n as f64 + 0.5),
        5 => AMQPValue::ShortInt(n as i16),
        6 => any_value(rng, 1),
        _ => AMQPValue::LongLongInt(n),
    }
}

/// An `expiration` property at its edges (RabbitMQ refuses some at publish: then the case
/// costs the publisher its channel, and is counted as refused by the broker).
pub(crate) fn expiration(rng: &mut Rng) -> ShortString {
    let s = match rng.below(10) {
        0 => "0".to_owned(),
        1 => "1".to_owned(),
        2 => "4294967295".to_owned(),
        3 => "4294967296".to_owned(),
        4 => "-1".to_owned(),
        5 => String::new(),
        6 => "1.5".to_owned(),
        7 => "99999999999999999999".to_owned(),
        8 => "soon".to_owned(),
        _ => rng.between(2, 60_000).to_string(),
    };
    s.into()
}

/// A `reply_to` of any shape: none of these may make a service publish where it should not,
/// nor cost it a channel.
pub(crate) fn reply_to(rng: &mut Rng, own: &str) -> Option<ShortString> {
    let s = match rng.below(14) {
        0 => return None,
        1 => String::new(),
        2 | 3 => own.to_owned(),
        4 => format!("amq.gen-{}", rng.word(22)),
        5 => "amq.rabbitmq.reply-to".to_owned(),
        6 => format!("amq.rabbitmq.reply-to.g2dkAA{}", rng.word(40)),
        7 => (*rng.pick(&crate::targets::rpc_routes())).to_owned(),
        8 => "queue-test".to_owned(),
        9 => "catalog.events.example.item.created".to_owned(),
        10 => "rpc.dlx".to_owned(),
        11 => format!("amq.gen-{}", "q".repeat(247)),
        12 => "amq.gen-é漢字\n".to_owned(),
        _ => "queue-test.dead".to_owned(),
    };
    Some(s.into())
}

/// An AMQP `type`: the kit reads it on replies and events.
pub(crate) fn kind(rng: &mut Rng) -> ShortString {
    let s = match rng.below(8) {
        0 => "result".to_owned(),
        1 => "error".to_owned(),
        2 => String::new(),
        3 => "request".to_owned(),
        4 => (*rng.pick(&crate::targets::EVENTS)).to_owned(),
        5 => "t".repeat(255),
        6 => "example.item.created\u{0}".to_owned(),
        _ => rng.word(30),
    };
    s.into()
}

/// Every property set to something, each with an even chance of being left out.
pub(crate) fn any_properties(rng: &mut Rng, own_reply_queue: &str, user: &str) -> BasicProperties {
    let mut p = BasicProperties::default();
    if rng.one_in(2) {
        p = p.with_content_type(short_text(rng));
    }
    if rng.one_in(2) {
        p = p.with_content_encoding(
            rng.pick(&["gzip", "identity", "deflate", "br", ""])
                .to_string()
                .into(),
        );
    }
    if rng.one_in(2) {
        p = p.with_headers(any_table(rng, 2, 6));
    }
    if rng.one_in(2) {
        p = p.with_delivery_mode(rng.next_u64() as u8);
    }
    if rng.one_in(2) {
        p = p.with_priority(rng.next_u64() as u8);
    }
    if rng.one_in(2) {
        p = p.with_correlation_id(short_text(rng));
    }
    if let Some(r) = reply_to(rng, own_reply_queue) {
        p = p.with_reply_to(r);
    }
    if rng.one_in(3) {
        p = p.with_expiration(expiration(rng));
    }
    if rng.one_in(2) {
        p = p.with_message_id(short_text(rng));
    }
    if rng.one_in(2) {
        p = p.with_timestamp(*rng.pick(&[0, u64::MAX, now_ms() as u64 / 1000, 4_102_444_800]));
    }
    if rng.one_in(2) {
        p = p.with_type(kind(rng));
    }
    if rng.one_in(4) {
        // The publisher's own name: the broker checks it.
        p = p.with_user_id(user.into());
    }
    if rng.one_in(2) {
        p = p.with_app_id(short_text(rng));
    }
    if rng.one_in(3) {
        p = p.with_cluster_id(short_text(rng));
    }
    p
}
