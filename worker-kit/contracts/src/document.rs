//! What a service's AsyncAPI document (as `worker_kit::asyncapi` writes it) says about its
//! contracts: each route with its request and reply schemas, each event it publishes or
//! subscribes to with its payload schema, and what it retired on purpose.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// How a contract is used by the service that describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An RPC route it serves: reads requests, writes replies.
    Rpc,
    /// A work queue it works off: reads messages.
    Task,
    /// An event it publishes on the `events` exchange: writes it.
    Publishes,
    /// An event it subscribes to: reads it.
    Subscribes,
}

impl Kind {
    /// For messages: `route`, `task route`, `published event`, `subscribed event`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Rpc => "route",
            Kind::Task => "task route",
            Kind::Publishes => "published event",
            Kind::Subscribes => "subscribed event",
        }
    }

    /// Whether it is an event (published or subscribed) rather than a route.
    pub fn is_event(self) -> bool {
        matches!(self, Kind::Publishes | Kind::Subscribes)
    }
}

/// One route or event of a document.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// What the service does with it.
    pub kind: Kind,
    /// The request, work-queue message or event payload schema (inside its `{"data": …}`
    /// envelope).
    pub input: &'a Value,
    /// The reply's `data` schema (RPC routes only).
    pub reply: Option<&'a Value>,
}

/// The contracts of one service's document.
#[derive(Debug, Clone)]
pub struct Contracts<'a> {
    /// The document, against which `$ref`s resolve.
    pub doc: &'a Value,
    /// Routes by name (queue).
    pub routes: BTreeMap<String, Entry<'a>>,
    /// Events by (kind, routing key).
    pub events: BTreeMap<(Kind, String), Entry<'a>>,
    /// Names under the root's `x-retired`.
    pub retired: BTreeSet<String>,
}

/// Follows `$ref`s (`#/…` JSON pointers into `doc`) until a value without one; a dangling
/// or external reference is left as it is.
pub fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    // A bound: a cycle of bare references describes nothing.
    for _ in 0..64 {
        let Some(target) = value
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| doc.pointer(pointer))
        else {
            return value;
        };
        value = target;
    }
    value
}

/// The `data` member of an envelope's schema, or the payload itself when it is not one.
fn enveloped<'a>(doc: &'a Value, message: &'a Value) -> &'a Value {
    let payload = resolve(doc, &message["payload"]);
    match payload.pointer("/properties/data") {
        Some(data) => data,
        None => payload,
    }
}

fn first_message<'a>(doc: &'a Value, holder: &'a Value) -> Option<&'a Value> {
    holder["messages"]
        .as_array()
        .and_then(|m| m.first())
        .map(|m| resolve(doc, m))
}

impl<'a> Contracts<'a> {
    /// Reads the contracts out of `doc`, an AsyncAPI 3.0 document.
    ///
    /// # Errors
    ///
    /// An operation whose channel or message cannot be found.
    pub fn of(doc: &'a Value) -> Result<Self, String> {
        let mut routes = BTreeMap::new();
        let mut events = BTreeMap::new();
        for (id, op) in doc["operations"].as_object().into_iter().flatten() {
            let channel = resolve(doc, &op["channel"]);
            let name = channel["address"]
                .as_str()
                .ok_or_else(|| format!("operation {id}: its channel has no address"))?
                .to_owned();
            let message =
                first_message(doc, op).ok_or_else(|| format!("operation {id}: no message"))?;
            let input = enveloped(doc, message);
            let action = op["action"].as_str().unwrap_or_default();
            match channel.pointer("/bindings/amqp/is").and_then(Value::as_str) {
                Some("routingKey") => {
                    let kind = if action == "send" {
                        Kind::Publishes
                    } else {
                        Kind::Subscribes
                    };
                    events.insert(
                        (kind, name),
                        Entry {
                            kind,
                            input,
                            reply: None,
                        },
                    );
                }
                _ => {
                    let reply = match op.get("reply") {
                        Some(reply) => Some(enveloped(
                            doc,
                            first_message(doc, reply).ok_or_else(|| {
                                format!("operation {id}: a reply without a message")
                            })?,
                        )),
                        None => None,
                    };
                    let kind = if reply.is_some() {
                        Kind::Rpc
                    } else {
                        Kind::Task
                    };
                    routes.insert(name, Entry { kind, input, reply });
                }
            }
        }
        let retired = doc["x-retired"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|r| r["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            doc,
            routes,
            events,
            retired,
        })
    }
}
