//! Reading AMQP header values, which other clients encode in other types (a count may be
//! any integer width or a decimal string), and showing them as JSON.

use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};

/// Header `name` as text.
pub(crate) fn text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Header `name` as a whole number, in whatever encoding the sender chose (the kit's own
/// reader, so `parked` counts exactly as the workers do).
pub(crate) use worker_kit::wire::header_u64 as number;

/// The reason of the broker's latest dead-lettering (`x-death`), for a message the broker
/// moved into the parking queue itself (a quorum route's delivery limit).
pub(crate) fn death_reason(headers: Option<&FieldTable>) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers?.inner().get("x-death")? else {
        return None;
    };
    match deaths.as_slice().first()? {
        AMQPValue::FieldTable(death) => text(Some(death), "reason"),
        _ => None,
    }
}

/// A table as a JSON object.
pub(crate) fn table_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), value_json(v)))
            .collect(),
    )
}

/// One header value as JSON; bytes that are not UTF-8 are shown as a count.
pub(crate) fn value_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::DecimalValue(d) => json!({"decimal": d.value, "scale": d.scale}),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => bytes_json(s.as_bytes()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_json).collect()),
        AMQPValue::Timestamp(t) => json!({"timestamp": t}),
        AMQPValue::FieldTable(t) => table_json(t),
        AMQPValue::ByteArray(b) => bytes_json(b.as_slice()),
        AMQPValue::Void => Value::Null,
    }
}

fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => json!(s),
        Err(_) => json!(format!("<{} bytes, not UTF-8>", bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_any_encoding() {
        let mut t = FieldTable::default();
        t.insert("a".into(), AMQPValue::LongLongInt(3));
        t.insert("b".into(), AMQPValue::ShortShortUInt(4));
        t.insert("c".into(), AMQPValue::LongString("5".into()));
        t.insert("d".into(), AMQPValue::LongInt(-1));
        assert_eq!(number(Some(&t), "a"), Some(3));
        assert_eq!(number(Some(&t), "b"), Some(4));
        assert_eq!(number(Some(&t), "c"), Some(5));
        assert_eq!(number(Some(&t), "d"), None);
        assert_eq!(number(Some(&t), "missing"), None);
    }

    #[test]
    fn the_brokers_dead_letter_reason() {
        let mut death = FieldTable::default();
        death.insert(
            "reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        let mut t = FieldTable::default();
        t.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        assert_eq!(death_reason(Some(&t)).as_deref(), Some("delivery_limit"));
        assert_eq!(
            table_json(&t),
            json!({"x-death": [{"reason": "delivery_limit"}]})
        );
    }
}
