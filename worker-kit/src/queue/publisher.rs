//! Publishing work messages: persistent, mandatory, and confirmed by the broker before
//! `publish` returns, with the `user_id` of the broker user the publisher logged in as.

use std::sync::Arc;
use std::time::Duration;

use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};
use serde::Serialize;

use crate::TaskContract;
use crate::amqp::broker::Broker;
use crate::amqp::confirm::{ConfirmChannel, Wait};
use crate::amqp::publish::Published;
use crate::db::{Client, DbError};
use crate::wire::envelope::{self, Encoding};

/// Why a message was not stored by the broker. When `publish` returns `Ok`, it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// No queue is bound for the route, so the message would be dropped.
    #[error("no queue for route {route}: start a worker for it (or declare the queue) first")]
    NoRoute {
        /// The route.
        route: String,
    },
    /// The broker refused the message (publisher nack).
    #[error("the broker refused the message for {route}")]
    Refused {
        /// The route.
        route: String,
    },
    /// The broker connection is down and did not come back in time, or broke mid-publish.
    #[error("broker unavailable while publishing to {route}: {message}")]
    Unavailable {
        /// The route.
        route: String,
        /// What failed.
        message: String,
    },
    /// The broker refused the message because its `user_id` is not the user the
    /// connection logged in as (406 `PRECONDITION_FAILED`, which closed the channel; the
    /// next publish opens a new one). The message was not stored.
    #[error(
        "the broker refused the message for {route}: its user_id does not match the user this connection logged in as ({broker_said})"
    )]
    UserIdRefused {
        /// The route.
        route: String,
        /// The broker's reason, naming both users.
        broker_said: String,
    },
    /// The encoded message is larger than `MAX_MESSAGE_BYTES`: the broker (whose
    /// `max_message_size` the shipped configuration sets to the same value) would close the
    /// publishing channel over it, and no kit worker would accept it. Nothing was sent.
    #[error(
        "message for {route} is {size} bytes, more than MAX_MESSAGE_BYTES ({limit} bytes); nothing was sent"
    )]
    TooLarge {
        /// The route.
        route: String,
        /// The encoded body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload cannot be serialized as JSON.
    #[error("payload for {route} cannot be serialized: {source}")]
    Encode {
        /// The route.
        route: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Why a message was not scheduled (or a cancel did not run).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The publisher was built without a database to store scheduled messages in.
    #[error(
        "this QueuePublisher has no database to schedule in: build it with QueuePublisher::new(&broker).with_database(&db), on a database with the worker_kit_scheduled table (worker-kit/sql/scheduled.sql in models/<service>/) and a ScheduledRelay registered with the Runner to publish what is due"
    )]
    NoDatabase,
    /// The message cannot be encoded or is too large ([`PublishError::Encode`],
    /// [`PublishError::TooLarge`]); nothing was stored.
    #[error(transparent)]
    Message(#[from] PublishError),
    /// The database did not store (or cancel) it.
    #[error("scheduled messages: {0}")]
    Database(#[from] DbError),
}

/// Publishes work messages now, or schedules them for later; cheap to clone.
#[derive(Clone, Debug)]
pub struct QueuePublisher {
    /// Where scheduled messages are stored ([`QueuePublisher::with_database`]).
    db: Option<Client>,
    /// Shared by the clones. It waits for a reconnect: `publish` is bounded by `timeout`.
    channel: Arc<ConfirmChannel>,
    timeout: Duration,
    max_message_bytes: usize,
    /// The `user_id` of every message: the broker user the publisher logged in as.
    user_id: ShortString,
}

impl QueuePublisher {
    /// A publisher on `broker`. Its channel is opened on first use and re-opened after a
    /// reconnect. It sends bodies up to the broker handle's `MAX_MESSAGE_BYTES`
    /// ([`Broker::max_message_bytes`]: the setting when the handle came from
    /// `runner::main` or [`Broker::connect_configured`]).
    pub fn new(broker: &Broker) -> Self {
        Self {
            db: None,
            channel: Arc::new(ConfirmChannel::new(
                broker.clone(),
                Wait::ForReconnect,
                "work messages",
            )),
            timeout: Duration::from_secs(30),
            max_message_bytes: broker.max_message_bytes(),
            user_id: broker.user_id().clone(),
        }
    }

    /// Messages claim `user` instead of the user the publisher logged in as: only for
    /// showing that the broker refuses them
    /// (`testing::ForgeUserId`, behind the `testing` feature).
    #[cfg(feature = "testing")]
    pub(crate) fn claiming_user_id(mut self, user: &str) -> Self {
        self.user_id = user.into();
        self
    }

    /// The largest body `publish` sends, instead of the broker handle's
    /// ([`Broker::max_message_bytes`]).
    #[must_use]
    pub fn with_max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max;
        self
    }

    /// Stores scheduled messages ([`QueuePublisher::send_at`]) in `db`, which needs the
    /// `worker_kit_scheduled` table and a [`ScheduledRelay`](crate::outbox::ScheduledRelay)
    /// to publish them.
    #[must_use]
    pub fn with_database(mut self, db: &Client) -> Self {
        self.db = Some(db.clone());
        self
    }

    /// The database scheduled messages go to.
    pub(super) fn database(&self) -> Result<&Client, ScheduleError> {
        self.db.as_ref().ok_or(ScheduleError::NoDatabase)
    }

    /// The largest body this publisher sends (and schedules).
    pub(super) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// How long `publish` waits for a (re)connection and the broker's confirm (default
    /// 30 s). While the broker is away, publishes wait this long for it to come back.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn channel(&self, route: &str) -> Result<Channel, PublishError> {
        self.channel
            .channel()
            .await
            .map_err(|e| PublishError::Unavailable {
                route: route.to_owned(),
                message: e.to_string(),
            })
    }

    /// Publishes a typed task message to its route.
    ///
    /// # Errors
    ///
    /// Any [`PublishError`]; on `Ok` the broker has stored the message.
    pub async fn publish_task<T: TaskContract>(&self, task: &T) -> Result<(), PublishError> {
        self.publish(T::ROUTE, task).await
    }

    /// Publishes `data` to `route` as `gzip({"data": data})`, persistent, and waits for
    /// the broker's confirm.
    ///
    /// # Errors
    ///
    /// Any [`PublishError`]; on `Ok` the broker has stored the message.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        route: &str,
        data: &T,
    ) -> Result<(), PublishError> {
        let body = envelope::encode_request(data, Encoding::Gzip).map_err(|source| {
            PublishError::Encode {
                route: route.to_owned(),
                source,
            }
        })?;
        self.publish_body(route, &body, Encoding::Gzip.content_encoding())
            .await
    }

    /// Publishes an already-encoded body (for tools and tests that need exact bytes).
    ///
    /// # Errors
    ///
    /// Any [`PublishError`] but `Encode`.
    pub async fn publish_body(
        &self,
        route: &str,
        body: &[u8],
        content_encoding: Option<&str>,
    ) -> Result<(), PublishError> {
        if body.len() > self.max_message_bytes {
            return Err(PublishError::TooLarge {
                route: route.to_owned(),
                size: body.len(),
                limit: self.max_message_bytes,
            });
        }
        let traced = crate::observe::trace::Traced::send(route);
        let publish = traced.run(self.publish_confirmed(route, body, content_encoding));
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(r) => r,
            Err(_) => Err(PublishError::Unavailable {
                route: route.to_owned(),
                message: format!(
                    "no confirm within {}ms; the broker may or may not have stored the message",
                    self.timeout.as_millis()
                ),
            }),
        }
    }

    async fn publish_confirmed(
        &self,
        route: &str,
        body: &[u8],
        content_encoding: Option<&str>,
    ) -> Result<(), PublishError> {
        let channel = self.channel(route).await?;
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_timestamp(crate::wire::delivery::now_timestamp())
            .with_user_id(self.user_id.clone());
        let mut headers = lapin::types::FieldTable::default();
        crate::observe::trace::inject(&mut headers);
        if !headers.inner().is_empty() {
            props = props.with_headers(headers);
        }
        if let Some(ce) = content_encoding {
            props = props.with_content_encoding(ce.into());
        }
        let route_owned = || route.to_owned();
        // Measured before it goes: properties past a frame would close the connection.
        let props = crate::wire::headers::within_frame(props).map_err(|size| {
            PublishError::Unavailable {
                route: route_owned(),
                message: format!(
                    "the message's properties are {size} bytes encoded, more than one frame holds ({} bytes); nothing was sent",
                    crate::wire::headers::MAX_PROPERTIES_BYTES
                ),
            }
        })?;
        match crate::amqp::publish::to_queue(&channel, route, body, props).await {
            Ok(Published::Stored) => Ok(()),
            Ok(Published::NoQueue) => Err(PublishError::NoRoute {
                route: route_owned(),
            }),
            Ok(Published::Refused) => Err(PublishError::Refused {
                route: route_owned(),
            }),
            Err(e) => Err(match crate::amqp::publish::user_id_refusal(&e) {
                Some(broker_said) => PublishError::UserIdRefused {
                    route: route_owned(),
                    broker_said,
                },
                None => PublishError::Unavailable {
                    route: route_owned(),
                    message: e.to_string(),
                },
            }),
        }
    }
}
