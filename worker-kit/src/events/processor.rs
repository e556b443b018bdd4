//! What an event subscription does per message: declare and bind its queue, then settle
//! deliveries exactly as a work queue does.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use lapin::message::Delivery;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use crate::events::admission::Admission;
use crate::handler::routes::BoundHandler;
use crate::observe::disposition::Disposition;
use crate::queue::QueueProcessor;
use crate::worker::WorkerKind;
use crate::worker::consume::Processor;

/// The event-subscription kind of [`Worker`](crate::worker::Worker).
#[derive(Debug, Clone, Default)]
pub struct Subscribe {
    pub(crate) max_retries: Option<u32>,
    pub(crate) exchange: Option<String>,
}

/// Declares the exchange (durable topic) so that subscribing works before the first
/// publisher ran, and publishing before the first subscriber.
pub(crate) async fn declare_exchange(
    channel: &Channel,
    exchange: &str,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

pub(crate) struct EventProcessor {
    exchange: String,
    /// Subscription queue → the pattern it is bound with.
    bindings: HashMap<String, String>,
    queue: QueueProcessor,
    admission: Admission,
}

impl EventProcessor {
    pub(crate) fn new(
        exchange: String,
        bindings: HashMap<String, String>,
        queue: QueueProcessor,
        admission: Admission,
    ) -> Self {
        Self {
            exchange,
            bindings,
            queue,
            admission,
        }
    }
}

#[async_trait]
impl Processor for EventProcessor {
    fn kind(&self) -> WorkerKind {
        WorkerKind::Events
    }

    async fn give_back(&self, delivery: Delivery, route: &Arc<str>) {
        self.queue.give_back(delivery, route).await;
    }

    fn requeue_after_panic(&self) -> bool {
        self.queue.requeue_after_panic()
    }

    async fn connection(&self, broker: &crate::amqp::Broker) -> Option<Arc<lapin::Connection>> {
        self.queue.connection(broker).await
    }

    fn link(&self) -> crate::observe::trace::Link {
        self.queue.link()
    }

    async fn declare(&self, channel: &Channel, route: &str) -> Result<(), lapin::Error> {
        declare_exchange(channel, &self.exchange).await?;
        // The subscription queue and its parking queue, as a work queue's.
        self.queue.declare(channel, route).await?;
        let pattern = self.bindings.get(route).map_or(route, String::as_str);
        channel
            .queue_bind(
                route.into(),
                self.exchange.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    async fn handle(
        &self,
        channel: &Channel,
        delivery: Delivery,
        route: &Arc<str>,
        handler: BoundHandler,
    ) -> Disposition {
        let pattern = self.bindings.get(&**route).map_or(&**route, String::as_str);
        // A refused event goes the way of a refused work message: parked as `Forbidden`
        // before its body is decoded.
        let handler = match self.admission.check(pattern, &delivery) {
            Ok(()) => handler,
            Err(refused) => handler.refusing(refused),
        };
        self.queue.handle(channel, delivery, route, handler).await
    }
}
