//! The one way the kit publishes to a queue it expects to exist: through the default
//! exchange, `mandatory`, waiting for the broker's confirm.

use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation};
use tracing::warn;

/// How a confirmed, mandatory publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// The broker routed and stored the message.
    Stored,
    /// No queue by that name: the broker returned the message.
    NoQueue,
    /// The broker refused the message (nack).
    Refused,
}

/// Publishes `body` to `queue` and waits for the confirm (the channel must be in confirm
/// mode).
pub(crate) async fn to_queue(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<Published, lapin::Error> {
    let confirm = channel
        .basic_publish(
            ShortString::from(""),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            props,
        )
        .await?
        .await?;
    Ok(match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Published::Stored,
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            // In place of lapin's own report, which dumps the message's bytes.
            warn!(
                route = queue,
                reply_code = returned.reply_code,
                reply_text = returned.reply_text.as_str(),
                "the broker returned the message: no queue by that name"
            );
            Published::NoQueue
        }
        Confirmation::Nack(None) => Published::Refused,
    })
}

/// AMQP's reply code for a precondition that failed, which RabbitMQ closes a channel with
/// when a message's `user_id` is not the user the connection logged in as.
const PRECONDITION_FAILED: u16 = 406;

/// What the broker said, when `e` is its refusal of a message whose `user_id` is not the
/// connection's user (`PRECONDITION_FAILED - user_id property set to 'x' but authenticated
/// user was 'y'`); the refusal closes the publishing channel.
pub(crate) fn user_id_refusal(e: &lapin::Error) -> Option<String> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp)
            if amqp.get_id() == PRECONDITION_FAILED
                && amqp.get_message().as_str().contains("user_id") =>
        {
            Some(amqp.get_message().as_str().to_owned())
        }
        _ => None,
    }
}
