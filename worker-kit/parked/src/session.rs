//! The broker connection of one command, made from the services' own settings, and the
//! route's parking queue; broker refusals turned into messages that say what to do.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use worker_kit::queue::parking_queue;
use worker_kit::{Broker, Config};

/// How long to try to reach the broker when `AMQP_CONNECT_TIMEOUT_MS` is not set: someone
/// at a terminal wants an answer sooner than a service starting beside its broker does.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// AMQP reply codes the broker closes a channel with.
const NOT_FOUND: u16 = 404;
const ACCESS_REFUSED: u16 = 403;

/// A connection to the broker and the route it works on.
pub(crate) struct Session {
    broker: Broker,
    connection: Arc<Connection>,
    /// The work-queue route.
    pub(crate) route: String,
    /// Its parking queue, `<route>.dead`.
    pub(crate) queue: String,
}

impl Session {
    /// Connects with `AMQP_URL` and the `AMQP_TLS_*` files (from the environment or
    /// `.env`) and checks that `route` has a parking queue.
    pub(crate) async fn open(route: &str) -> Result<Self> {
        check_route(route)?;
        let config = Config::from_env()?;
        let timeout = if std::env::var_os("AMQP_CONNECT_TIMEOUT_MS").is_some() {
            config.connect_timeout
        } else {
            DEFAULT_CONNECT_TIMEOUT
        };
        // The error names the URL with its password hidden.
        let broker =
            Broker::connect_with_tls(&config.amqp_url, &config.amqp_tls(), "parked", timeout)
                .await?;
        let connection = broker
            .connection()
            .await
            .ok_or_else(|| anyhow!("the broker connection closed as soon as it opened"))?;
        let session = Self {
            broker,
            connection,
            route: route.to_owned(),
            queue: parking_queue(route),
        };
        session.depth().await?;
        Ok(session)
    }

    /// The broker user this command logs in as (and publishes replays as).
    pub(crate) fn user(&self) -> &str {
        self.broker.user()
    }

    /// How many messages the parking queue holds that nobody has taken (a passive declare,
    /// which never changes the queue).
    pub(crate) async fn depth(&self) -> Result<u32> {
        // A missing queue closes the channel it was asked on: a channel of its own.
        let probe = self.channel().await?;
        let queue = probe
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.explain(&e, "looking up the parking queue"))?;
        let _ = probe.close(200, "done".into()).await;
        Ok(queue.message_count())
    }

    /// A new channel.
    pub(crate) async fn channel(&self) -> Result<Channel> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| anyhow!("opening a channel failed: {e}; is the broker still up?"))
    }

    /// A new channel in confirm mode (the broker confirms each publish once stored).
    pub(crate) async fn confirm_channel(&self) -> Result<Channel> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| anyhow!("enabling publisher confirms failed: {e}"))?;
        Ok(channel)
    }

    /// `e`, which happened while `doing`, as a message that says what to do.
    pub(crate) fn explain(&self, e: &lapin::Error, doing: &str) -> anyhow::Error {
        if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
            let said = amqp.get_message().as_str();
            match amqp.get_id() {
                NOT_FOUND => {
                    let hint = match self.route.strip_suffix(".dead") {
                        Some(base) => format!(
                            "; give the route, not its parking queue (`{base}`, not `{}`)",
                            self.route
                        ),
                        None => String::new(),
                    };
                    return anyhow!(
                        "no parking queue `{}` for route `{}` on this broker (404: {said}): the route has never parked a message here, or its name is wrong (the vhost is AMQP_URL's){hint}",
                        self.queue,
                        self.route
                    );
                }
                ACCESS_REFUSED => {
                    return anyhow!(
                        "the broker refused user `{}` while {doing} (403: {said}): run parked as the broker user of the service that owns `{}` (its AMQP_URL), or grant this user configure, write and read permissions on the vhost (rabbitmqctl set_permissions)",
                        self.user(),
                        self.route
                    );
                }
                _ => {}
            }
        }
        anyhow!("{doing} failed: {e}")
    }

    /// Closes the connection; messages fetched and not acknowledged go back to the broker.
    pub(crate) async fn close(self) {
        self.broker.close().await;
    }
}

/// Refuses a route that cannot name a queue (AMQP names are at most 255 bytes, and the
/// parking queue adds `.dead`).
fn check_route(route: &str) -> Result<()> {
    if route.is_empty() {
        return Err(anyhow!(
            "the route is empty: give the work-queue route, e.g. `images.resize`"
        ));
    }
    let longest = 255 - ".dead".len();
    if route.len() > longest {
        return Err(anyhow!(
            "route `{route}` is {} bytes long; a route whose parking queue can exist has at most {longest}",
            route.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_that_cannot_name_a_parking_queue_are_refused() {
        assert!(check_route("images.resize").is_ok());
        assert!(check_route("").unwrap_err().to_string().contains("empty"));
        let long = "r".repeat(251);
        assert!(
            check_route(&long)
                .unwrap_err()
                .to_string()
                .contains("at most 250")
        );
    }
}
