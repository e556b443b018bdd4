//! Reading what the kit needs off an AMQP delivery's properties.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

use crate::wire::deadline;

/// Header carrying how often a work-queue message has been retried.
pub const RETRY_COUNT_HEADER: &str = "x-retry-count";

/// An integer header, accepting any AMQP integer width or a decimal string (other
/// clients encode numbers differently).
pub fn header_u64(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    let v = headers?.inner().get(name)?;
    match v {
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::Timestamp(n) => Some(*n),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

/// The `x-deadline` header as a point in time: an integer is epoch milliseconds (what the
/// kit sends), an AMQP timestamp epoch seconds (what AMQP clients send when handed a
/// date/time value).
pub(crate) fn deadline_header(headers: Option<&FieldTable>) -> Option<SystemTime> {
    match headers?.inner().get(deadline::HEADER)? {
        AMQPValue::Timestamp(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(*secs)),
        _ => UNIX_EPOCH.checked_add(Duration::from_millis(header_u64(
            headers,
            deadline::HEADER,
        )?)),
    }
}

/// Seconds since the epoch, for the `timestamp` property.
pub(crate) fn now_timestamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The correlation id for logs.
pub(crate) fn correlation_id(p: &BasicProperties) -> Option<&str> {
    p.correlation_id()
        .as_ref()
        .map(lapin::types::ShortString::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_as_integer_is_millis_and_as_timestamp_seconds() {
        let mut t = FieldTable::default();
        t.insert(
            deadline::HEADER.into(),
            AMQPValue::LongLongInt(1_700_000_000_123),
        );
        assert_eq!(
            deadline_header(Some(&t)),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        t.insert(deadline::HEADER.into(), AMQPValue::Timestamp(1_700_000_000));
        assert_eq!(
            deadline_header(Some(&t)),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        t.insert(deadline::HEADER.into(), AMQPValue::Boolean(true));
        assert_eq!(deadline_header(Some(&t)), None);
    }

    #[test]
    fn integer_headers_of_any_width() {
        let mut t = FieldTable::default();
        t.insert("a".into(), AMQPValue::LongLongInt(5));
        t.insert("b".into(), AMQPValue::ShortShortUInt(6));
        t.insert("c".into(), AMQPValue::LongString("7".into()));
        t.insert("d".into(), AMQPValue::LongInt(-1));
        t.insert("e".into(), AMQPValue::Boolean(true));
        assert_eq!(header_u64(Some(&t), "a"), Some(5));
        assert_eq!(header_u64(Some(&t), "b"), Some(6));
        assert_eq!(header_u64(Some(&t), "c"), Some(7));
        assert_eq!(header_u64(Some(&t), "d"), None);
        assert_eq!(header_u64(Some(&t), "e"), None);
        assert_eq!(header_u64(Some(&t), "missing"), None);
        assert_eq!(header_u64(None, "a"), None);
    }
}
