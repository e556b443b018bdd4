//! What the broker's refusals mean: the AMQP reply codes the kit reacts to.

/// The answer to a passive declaration of a queue that does not exist.
pub(crate) const NOT_FOUND: u16 = 404;

/// RabbitMQ 4.3's answer (INTERNAL_ERROR, a connection close) to declaring a transient
/// non-exclusive queue while the deprecated feature is denied.
const INTERNAL_ERROR: u16 = 541;

/// The AMQP reply code of a channel or connection error.
pub(crate) fn amqp_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// Whether `e` is the broker refusing a transient non-exclusive queue.
pub(crate) fn refuses_transient_queues(e: &lapin::Error) -> bool {
    e.is_amqp_hard_error() && amqp_code(e) == Some(INTERNAL_ERROR)
}
