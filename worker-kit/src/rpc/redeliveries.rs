//! How often an RPC request came back `redelivered` (protocol v3, issue 25.3).
//!
//! The broker redelivers a request when the channel or connection it was delivered on died
//! before it was settled: a crash, an OOM kill, a broker restart, or a request whose
//! handling itself closes the channel. The last kind loops forever unless somebody counts.
//! Work queues count on a copy they republish (`x-retry-count`); an RPC request cannot be
//! copied without losing its caller's `user_id`, and classic queues (what RPC routes are)
//! carry only a boolean `redelivered`. So the count is kept here, in the process, in a
//! bounded table keyed by what identifies the request (route, correlation id, message id,
//! `reply_to` and body, hashed with a per-process key so that no peer can aim collisions at
//! somebody else's request). A quorum queue's `x-delivery-count` is taken when it is higher.
//!
//! What this cannot see: a request that kills the whole process starts from zero in the next
//! one (and in each replica). Those are bounded by the request's `expiration` (the kit's
//! callers always set it to their timeout, so the broker drops the request then), or by a
//! quorum queue's delivery limit; a caller that sends neither is not protected from them.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;

use lapin::BasicProperties;
use lapin::types::ShortString;

use crate::wire::delivery::header_u64;

/// How many redelivered requests are remembered; the oldest is forgotten first. Only
/// redelivered requests are entered, so this is reached only when many die at once.
const CAPACITY: usize = 4096;

/// The header in which quorum queues count earlier deliveries.
const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// Redeliveries seen per request, bounded in size.
pub(crate) struct Redeliveries {
    key: RandomState,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    counts: HashMap<u64, u32>,
    order: VecDeque<u64>,
}

impl Redeliveries {
    pub(crate) fn new() -> Self {
        Self {
            key: RandomState::new(),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Counts one more redelivery of the request (`route`, `props`, `body`) and says how many
    /// it has had, this one included.
    pub(crate) fn count(&self, route: &str, props: &BasicProperties, body: &[u8]) -> u32 {
        let id = self.identify(route, props, body);
        let here = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.add(id)
        };
        let by_broker = header_u64(props.headers().as_ref(), DELIVERY_COUNT_HEADER)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        here.max(by_broker)
    }

    fn identify(&self, route: &str, props: &BasicProperties, body: &[u8]) -> u64 {
        let text = |s: &Option<ShortString>| s.as_ref().map(|s| s.as_str().to_owned());
        let mut h = self.key.build_hasher();
        route.hash(&mut h);
        text(props.correlation_id()).hash(&mut h);
        text(props.message_id()).hash(&mut h);
        text(props.reply_to()).hash(&mut h);
        body.hash(&mut h);
        h.finish()
    }
}

impl Seen {
    fn add(&mut self, id: u64) -> u32 {
        let n = self.counts.entry(id).or_insert(0);
        *n = n.saturating_add(1);
        let n = *n;
        if n == 1 {
            self.order.push_back(id);
            if self.order.len() > CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.counts.remove(&oldest);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::{AMQPValue, FieldTable};

    use super::*;

    fn request(cid: &str) -> BasicProperties {
        BasicProperties::default()
            .with_correlation_id(cid.into())
            .with_reply_to("amq.gen-x".into())
    }

    #[test]
    fn counts_per_request() {
        let r = Redeliveries::new();
        assert_eq!(r.count("a", &request("1"), b"x"), 1);
        assert_eq!(r.count("a", &request("1"), b"x"), 2);
        assert_eq!(
            r.count("a", &request("2"), b"x"),
            1,
            "another correlation id"
        );
        assert_eq!(r.count("b", &request("1"), b"x"), 1, "another route");
        assert_eq!(r.count("a", &request("1"), b"y"), 1, "another body");
        assert_eq!(r.count("a", &request("1"), b"x"), 3);
    }

    #[test]
    fn a_quorum_queues_count_wins_when_higher() {
        let r = Redeliveries::new();
        let mut h = FieldTable::default();
        h.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(7));
        assert_eq!(r.count("a", &request("1").with_headers(h), b"x"), 7);
    }

    #[test]
    fn the_table_stays_bounded() {
        let r = Redeliveries::new();
        let first = request("first");
        assert_eq!(r.count("a", &first, b""), 1);
        for i in 0..CAPACITY {
            r.count("a", &request(&i.to_string()), b"");
        }
        let seen = r.seen.lock().unwrap();
        assert_eq!(seen.counts.len(), CAPACITY);
        assert_eq!(seen.order.len(), CAPACITY);
        drop(seen);
        assert_eq!(r.count("a", &first, b""), 1, "the oldest was forgotten");
    }
}
