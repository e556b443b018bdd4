//! Which broker users an event subscription admits events from (protocol v3, issue 25.4).
//!
//! Anyone with `write` on the `events` exchange can publish any routing key, and a
//! subscriber's read model trusts what it is told: a forged `example.item.created` from
//! another user would be applied like the real one. So a subscription admits an event only
//! from the broker user that owns its name — the name's first segment (`example.*` from the
//! user `example`, as `rabbitmq-configs/definitions.json` names them) — or, where
//! `ROUTE_ALLOW` lists users for the subscribed name (`example.item.created=example-v2`),
//! from those. `EVENT_PUBLISHERS=any` is for deployments where every service shares one
//! broker user (which cannot tell publishers apart anyway). A refused event is parked with
//! `x-error-type: Forbidden` without running the handler.

use std::collections::HashMap;

use lapin::message::Delivery;
use lapin::types::ShortString;

use crate::access::{AllowList, resolve};
use crate::config::{Config, EventPublishers};
use crate::wire::reply_error::ErrorReply;

/// What each subscription of one worker admits.
pub(crate) struct Admission {
    publishers: EventPublishers,
    /// `ROUTE_ALLOW` lists keyed by a subscribed name (pattern).
    overrides: HashMap<String, AllowList>,
    /// The subscribing service's own user: its retry copies come from it.
    own_user: ShortString,
}

impl Admission {
    pub(crate) fn new(config: &Config, own_user: ShortString) -> Self {
        Self {
            publishers: config.event_publishers,
            overrides: config.route_allow.iter().cloned().collect(),
            own_user,
        }
    }

    /// Whom the subscription to `pattern` admits, for the log at start.
    pub(crate) fn describe(&self, pattern: &str) -> String {
        match (self.overrides.get(pattern), self.publishers) {
            (Some(list), _) => format!("the users {:?} (ROUTE_ALLOW)", list.patterns()),
            (None, EventPublishers::Any) => "every user (EVENT_PUBLISHERS=any)".to_owned(),
            (None, EventPublishers::Owner) => {
                "the user named by each event's first segment (EVENT_PUBLISHERS=owner)".to_owned()
            }
        }
    }

    /// `Ok` when the subscription to `pattern` admits `delivery`, else the `Forbidden`
    /// error it is parked with.
    pub(crate) fn check(&self, pattern: &str, delivery: &Delivery) -> Result<(), ErrorReply> {
        let list = self.overrides.get(pattern);
        if list.is_none() && self.publishers == EventPublishers::Any {
            return Ok(());
        }
        let props = &delivery.properties;
        let user_id = props.user_id().as_ref().map(ShortString::as_str);
        let headers = props.headers().clone().unwrap_or_default();
        let caller = resolve(user_id, &headers, self.own_user.as_str());
        let kind = props.kind().as_ref().map(ShortString::as_str);
        // A retry copy comes from this service through the default exchange, routed by its
        // queue's name: its event name is its type, its sender `x-original-user-id`.
        let copy = delivery.exchange.as_str().is_empty() && user_id == Some(self.own_user.as_str());
        let name = if copy {
            kind.unwrap_or_default()
        } else {
            let routed = delivery.routing_key.as_str();
            if kind.is_some_and(|k| k != routed) {
                return Err(ErrorReply::forbidden(format!(
                    "the event's AMQP type {kind:?} is not its routing key {routed:?}: a handler would act on a name the publisher was not checked for"
                )));
            }
            routed
        };
        let owner;
        let list = match list {
            Some(l) => l,
            None => {
                owner = AllowList::new([name.split('.').next().unwrap_or_default()]);
                &owner
            }
        };
        match caller.verified_user() {
            Some(user) if list.admits(user) => Ok(()),
            Some(user) => Err(ErrorReply::forbidden(format!(
                "{user} may not publish {name}: the subscription {pattern} admits {}",
                self.describe(pattern)
            ))),
            None => Err(ErrorReply::forbidden(format!(
                "event {name} carries no user_id: the subscription {pattern} admits {}",
                self.describe(pattern)
            ))),
        }
    }
}
