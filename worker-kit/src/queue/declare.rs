//! How a work-queue route's queue and its parking queue are declared: classic (the Python
//! seed's shape) or quorum (replicated over a RabbitMQ cluster).
//!
//! A queue's type is fixed when it is created: declaring an existing queue with another
//! type (or other arguments) fails with `PRECONDITION_FAILED`. Every worker of a route,
//! Python ones included, must therefore declare it the same way; moving a route to quorum
//! means a new queue (drain and delete the old one, or use a new route name).
//!
//! Classic queues name their type (`x-queue-type: classic`): a RabbitMQ 4.x broker may have
//! a default queue type per vhost or node, and one of quorum would otherwise turn them into
//! quorum queues. RabbitMQ compares that argument by the queue's type, so a classic queue a
//! Python worker declared without arguments accepts the kit's declaration, and the Python
//! worker's declaration is accepted by one the kit made (both orders are tested).

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

pub use crate::config::QueueType;

/// The parking queue of `route`: where messages go that could not be worked.
pub fn parking_queue(route: &str) -> String {
    format!("{route}.dead")
}

/// The broker's delivery limit (`x-delivery-limit`) on a quorum route queue: a safety net
/// above the kit's own retries, which a quorum route's `QUEUE_MAX_RETRIES` must stay below.
///
/// The kit's retries are new copies (each starts at delivery count 0), so the broker's
/// count only grows when a delivery goes back to the queue unsettled: a worker lost
/// mid-handler, or a retry copy that could not be stored during a broker failure. Those
/// are rare and never add up to 50; a message that crashes its worker over and over does,
/// and is dead-lettered to the parking queue instead of looping forever.
///
/// It is a constant, not derived from the retry count, because RabbitMQ compares it when
/// a queue is declared again: a limit that followed `QUEUE_MAX_RETRIES` would make the
/// next deploy with another retry count fail with `PRECONDITION_FAILED`.
pub const DELIVERY_LIMIT: u32 = 50;

/// A durable, non-exclusive, non-auto-delete queue: both types, both queues.
pub(crate) fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        exclusive: false,
        auto_delete: false,
        ..QueueDeclareOptions::default()
    }
}

/// The arguments of route `route`'s own queue.
pub(crate) fn route_queue_args(kind: QueueType, route: &str) -> FieldTable {
    let mut args = FieldTable::default();
    if kind == QueueType::Classic {
        classic(&mut args);
    }
    if kind == QueueType::Quorum {
        quorum(&mut args);
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(DELIVERY_LIMIT)),
        );
        // What exceeds the limit goes to the parking queue through the default exchange,
        // and is removed from this queue only once the parking queue has confirmed it
        // (at-least-once dead-lettering, which RabbitMQ allows only with reject-publish).
        args.insert("x-dead-letter-exchange".into(), long_string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            long_string(&parking_queue(route)),
        );
        args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        args.insert("x-overflow".into(), long_string("reject-publish"));
    }
    args
}

/// Refuses a retry count that would not stay below the broker's delivery limit on a quorum
/// queue (a route's, or an event subscription's): the broker would then park messages the
/// kit still meant to retry.
pub(crate) fn check_retries(kind: QueueType, queue: &str, max_retries: u32) -> Result<(), String> {
    if kind == QueueType::Quorum && max_retries >= DELIVERY_LIMIT {
        return Err(format!(
            "quorum queue `{queue}`: {max_retries} retries reach the broker's delivery limit ({DELIVERY_LIMIT}); use fewer than {DELIVERY_LIMIT} (QUEUE_MAX_RETRIES, or the worker's max_retries)"
        ));
    }
    Ok(())
}

/// The arguments of `route`'s delay queue for waits of `ms` milliseconds: the queue TTL is
/// the wait, and what expires goes back to the route through the default exchange.
///
/// Of the route's type: a quorum route's retries wait in quorum queues that dead-letter
/// at least once (a copy leaves the delay queue only once the route queue has it), so a
/// retry survives the loss of a node as the message it copies would have. A classic
/// route's delay queues are classic, whose dead-lettering is at most once: a copy that
/// expires while the route queue does not exist is dropped (the route queue exists while
/// the route is served).
pub(crate) fn delay_queue_args(kind: QueueType, route: &str, ms: u64) -> FieldTable {
    let mut args = FieldTable::default();
    match kind {
        QueueType::Classic => classic(&mut args),
        QueueType::Quorum => {
            quorum(&mut args);
            args.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            args.insert("x-overflow".into(), long_string("reject-publish"));
        }
    }
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
    );
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert("x-dead-letter-routing-key".into(), long_string(route));
    args
}

/// The arguments of a route's parking queue.
pub(crate) fn parking_queue_args(kind: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    match kind {
        QueueType::Classic => classic(&mut args),
        QueueType::Quorum => quorum(&mut args),
    }
    args
}

/// The argument that names a queue's type.
pub(crate) const QUEUE_TYPE_ARG: &str = "x-queue-type";

fn quorum(args: &mut FieldTable) {
    args.insert(QUEUE_TYPE_ARG.into(), long_string("quorum"));
}

/// Names the classic type, so that a broker's default queue type does not choose another.
pub(crate) fn classic(args: &mut FieldTable) {
    args.insert(QUEUE_TYPE_ARG.into(), long_string("classic"));
}

/// Whether `args` name the classic type.
pub(crate) fn names_classic(args: &FieldTable) -> bool {
    args.inner().get(QUEUE_TYPE_ARG) == Some(&long_string("classic"))
}

/// `args` without the queue type: the declaration of a queue that exists already with
/// another type, which it keeps.
pub(crate) fn without_queue_type(args: &FieldTable) -> FieldTable {
    let mut map = args.inner().clone();
    map.remove(QUEUE_TYPE_ARG);
    FieldTable::from(map)
}

/// Whether `e` is the broker refusing a declaration because the queue exists with another
/// type (`PRECONDITION_FAILED - inequivalent arg 'x-queue-type'`).
pub(crate) fn refuses_queue_type(e: &lapin::Error) -> bool {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            amqp.get_id() == 406 && amqp.get_message().as_str().contains(QUEUE_TYPE_ARG)
        }
        _ => false,
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(args: &'a FieldTable, key: &str) -> Option<&'a AMQPValue> {
        args.inner().get(key)
    }

    #[test]
    fn classic_names_its_type_and_nothing_else() {
        for args in [
            route_queue_args(QueueType::Classic, "r"),
            parking_queue_args(QueueType::Classic),
        ] {
            assert_eq!(args.inner().len(), 1, "{args:?}");
            assert!(names_classic(&args));
            assert!(without_queue_type(&args).inner().is_empty());
        }
        assert!(!names_classic(&parking_queue_args(QueueType::Quorum)));
    }

    #[test]
    fn quorum_route_queue() {
        let args = route_queue_args(QueueType::Quorum, "images.resize");
        assert_eq!(
            get(&args, "x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(
            get(&args, "x-delivery-limit"),
            Some(&AMQPValue::LongLongInt(50))
        );
        assert_eq!(
            get(&args, "x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("images.resize.dead".into()))
        );
        assert_eq!(
            get(&args, "x-dead-letter-strategy"),
            Some(&AMQPValue::LongString("at-least-once".into()))
        );
        let parking = parking_queue_args(QueueType::Quorum);
        assert_eq!(parking.inner().len(), 1, "the parking queue is only quorum");
    }

    #[test]
    fn delay_queues_send_back_to_the_route_and_keep_its_type() {
        let classic_args = delay_queue_args(QueueType::Classic, "r", 400);
        assert!(names_classic(&classic_args));
        assert_eq!(
            get(&classic_args, "x-message-ttl"),
            Some(&AMQPValue::LongLongInt(400))
        );
        assert_eq!(
            get(&classic_args, "x-dead-letter-routing-key"),
            Some(&AMQPValue::LongString("r".into()))
        );
        assert_eq!(
            get(&classic_args, "x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("".into()))
        );
        let quorum_args = delay_queue_args(QueueType::Quorum, "r", 400);
        assert_eq!(
            get(&quorum_args, "x-dead-letter-strategy"),
            Some(&AMQPValue::LongString("at-least-once".into()))
        );
        assert_eq!(
            get(&quorum_args, "x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
    }

    #[test]
    fn retries_stay_below_the_delivery_limit() {
        assert!(check_retries(QueueType::Quorum, "r", DELIVERY_LIMIT - 1).is_ok());
        let e = check_retries(QueueType::Quorum, "r", DELIVERY_LIMIT).unwrap_err();
        assert!(
            e.contains("quorum queue `r`") && e.contains("fewer than 50"),
            "{e}"
        );
        assert!(check_retries(QueueType::Classic, "r", 1000).is_ok());
    }
}
