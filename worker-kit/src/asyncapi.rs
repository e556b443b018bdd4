//! An AsyncAPI 3.0 document of a service, made from its workers' route tables.
//!
//! Each route is a channel whose address is its queue (flags as docs/protocol.md declares
//! them, in the AMQP binding), with the request envelope `{"data": …}` as its message.
//! RPC routes are `receive` operations with a `reply` sent to the request's `reply_to`
//! property; work-queue routes are `receive` operations without one. Payload and reply
//! schemas come from the contract types ([`Contract`](crate::Contract) requires
//! `schemars::JsonSchema`), as draft-07 JSON Schema with their definitions under
//! `components.schemas`; a route registered by name, without a contract, takes any JSON.
//!
//! Events are channels too, addressed by their routing key on the `events` topic exchange
//! (AMQP binding `is: routingKey`): what the service publishes ([`Document::publishes`]) is a
//! `send` operation, what it subscribes to ([`Document::subscribes`]) a `receive` operation
//! on its subscription queue. Routes and events taken out of service on purpose are listed
//! under the root's `x-retired` ([`Document::retired`]), so the contract check
//! (`scripts/pj contracts check`) knows their removal is intended.
//!
//! ```
//! use std::convert::Infallible;
//! use worker_kit::{Payload, asyncapi::Document, rpc::RpcWorker};
//!
//! async fn echo(Payload(v): Payload<serde_json::Value>) -> Result<serde_json::Value, Infallible> {
//!     Ok(v)
//! }
//!
//! // No state: the worker is `RpcWorker<()>` (a worker whose handlers take `State<App>`
//! // is described before its state is given, as `RpcWorker<App>`).
//! let worker: RpcWorker = RpcWorker::new().route("echo", echo);
//! let doc = Document::new("echo").rpc(&worker).to_json();
//! assert_eq!(doc["asyncapi"], "3.0.0");
//! assert_eq!(doc["channels"]["echo"]["address"], "echo");
//! ```

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::EventContract;
use crate::events::{AGGREGATE_ID_HEADER, EXCHANGE, OCCURRED_AT_HEADER, SEQ_HEADER};
use crate::handler::routes::{RouteDoc, SchemaFn};
use crate::queue::QueueWorker;
use crate::rpc::{RPC_DLX, RpcWorker};

/// The AMQP bindings' version used throughout.
const AMQP_BINDING: &str = "0.3.0";

/// The error types every route may answer, whatever its handler: the kit's own.
const KIT_ERRORS: [(&str, &str); 4] = [
    (
        "ValidationError",
        "the payload does not fit the route's request type (before the handler runs)",
    ),
    (
        "BadRequest",
        "the body is not a request envelope (size, gzip, UTF-8, JSON or shape)",
    ),
    (
        "Timeout",
        "the caller's deadline passed before or while the request was handled",
    ),
    ("Internal", "the handler failed unexpectedly (or panicked)"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rpc,
    Queue,
}

/// Whether the service sends an event or receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Publishes,
    Subscribes,
}

/// An event the document describes: its routing key and payload schema.
#[derive(Clone, Copy)]
struct EventDoc {
    direction: Direction,
    routing_key: &'static str,
    payload: SchemaFn,
    type_name: &'static str,
}

impl std::fmt::Debug for EventDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDoc")
            .field("direction", &self.direction)
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

/// A service's AsyncAPI document, built from its workers.
#[derive(Debug, Clone)]
pub struct Document {
    service: String,
    version: String,
    routes: Vec<(Kind, String, DocEntry)>,
    events: Vec<EventDoc>,
    retired: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy)]
struct DocEntry {
    doc: RouteDocCopy,
}

// `RouteDoc` holds fn pointers, which are `Copy` but not `Debug`.
#[derive(Clone, Copy)]
struct RouteDocCopy(RouteDoc);

impl std::fmt::Debug for RouteDocCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteDoc")
            .field("typed", &self.0.request.is_some())
            .finish()
    }
}

impl Document {
    /// An empty document for `service` (version `0.1.0` until [`Document::version`]).
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            version: "0.1.0".to_owned(),
            routes: Vec::new(),
            events: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// The service's version (`info.version`).
    #[must_use]
    pub fn version(mut self, version: &str) -> Self {
        version.clone_into(&mut self.version);
        self
    }

    /// Adds an RPC worker's routes (before or after its state is given: describing them
    /// needs no state).
    #[must_use]
    pub fn rpc<S: Clone + Send + Sync + 'static>(mut self, worker: &RpcWorker<S>) -> Self {
        for (name, doc) in worker.docs() {
            self.routes.push((
                Kind::Rpc,
                name,
                DocEntry {
                    doc: RouteDocCopy(doc),
                },
            ));
        }
        self
    }

    /// Adds a queue worker's routes.
    #[must_use]
    pub fn queue<S: Clone + Send + Sync + 'static>(mut self, worker: &QueueWorker<S>) -> Self {
        for (name, doc) in worker.docs() {
            self.routes.push((
                Kind::Queue,
                name,
                DocEntry {
                    doc: RouteDocCopy(doc),
                },
            ));
        }
        self
    }

    /// Describes an event the service publishes on the `events` exchange (through its
    /// outbox): its routing key and payload schema.
    #[must_use]
    pub fn publishes<E: EventContract + schemars::JsonSchema>(self) -> Self {
        self.event::<E>(Direction::Publishes)
    }

    /// Describes an event the service subscribes to (as its [`EventWorker`](crate::events::EventWorker)
    /// handles it): its routing key and the payload schema the service reads.
    #[must_use]
    pub fn subscribes<E: EventContract + schemars::JsonSchema>(self) -> Self {
        self.event::<E>(Direction::Subscribes)
    }

    fn event<E: EventContract + schemars::JsonSchema>(mut self, direction: Direction) -> Self {
        let full = std::any::type_name::<E>();
        self.events.push(EventDoc {
            direction,
            routing_key: E::ROUTING_KEY,
            payload: |g| g.subschema_for::<E>(),
            type_name: full.rsplit("::").next().unwrap_or(full),
        });
        self
    }

    /// Records that route or event `name` was taken out of service on purpose (every
    /// caller or subscriber moved on), and why: the contract check then accepts its
    /// removal. Listed under the document's `x-retired`.
    #[must_use]
    pub fn retired(mut self, name: &str, why: &str) -> Self {
        self.retired.push((name.to_owned(), why.to_owned()));
        self
    }

    /// The route names, in the order added.
    pub fn route_names(&self) -> Vec<&str> {
        self.routes.iter().map(|(_, n, _)| n.as_str()).collect()
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Value {
        let mut settings = SchemaSettings::draft07();
        settings.definitions_path = "/components/schemas".into();
        let mut generator = SchemaGenerator::new(settings);
        let mut channels = Map::new();
        let mut operations = Map::new();
        let mut messages = Map::new();
        messages.insert("ErrorReply".into(), error_reply_message());
        for (kind, name, entry) in &self.routes {
            let id = channel_id(name);
            let doc = entry.doc.0;
            let request_schema = doc
                .request
                .map_or_else(any_json, |f| f(&mut generator).to_value());
            let request_title = doc.request_name.unwrap_or("any JSON");
            let request_id = format!("{id}.request");
            let mut request = json!({
                    "name": request_id,
                    "title": format!("{name} request ({request_title})"),
                    "contentType": "application/json",
                    "payload": envelope("data", request_schema),
                    "bindings": {"amqp": {
                        "contentEncoding": "gzip",
                        "messageType": name,
                        "bindingVersion": AMQP_BINDING
                    }}
            });
            if *kind == Kind::Rpc {
                request["correlationId"] = json!({
                    "description": "the AMQP correlation_id property, copied to the reply",
                    "location": "$message.header#/correlation_id"
                });
            }
            messages.insert(request_id.clone(), request);
            channels.insert(
                id.clone(),
                json!({
                    "address": name,
                    "title": name,
                    "description": match kind {
                        Kind::Rpc => format!("RPC route queue `{name}` (classic, transient, dead-lettered to `{RPC_DLX}`)."),
                        Kind::Queue => format!("Work queue `{name}` (durable); messages whose retries run out, or that cannot be decoded, are moved to `{name}.dead`."),
                    },
                    "messages": {"request": {"$ref": format!("#/components/messages/{}", escape_ref(&request_id))}},
                    "bindings": {"amqp": queue_binding(*kind, name)}
                }),
            );
            let mut op = json!({
                "action": "receive",
                "title": name,
                "channel": {"$ref": format!("#/channels/{}", escape_ref(&id))},
                "messages": [{"$ref": format!("#/channels/{}/messages/request", escape_ref(&id))}],
                "bindings": {"amqp": {"ack": true, "bindingVersion": AMQP_BINDING}}
            });
            if *kind == Kind::Rpc {
                let reply_channel = format!("{id}.reply");
                let ok_id = format!("{id}.reply");
                let response = doc
                    .response
                    .map_or_else(any_json, |f| f(&mut generator).to_value());
                messages.insert(
                    ok_id.clone(),
                    json!({
                        "name": ok_id,
                        "title": format!("{name} reply"),
                        "contentType": "application/json",
                        "payload": success_envelope(response),
                        "bindings": {"amqp": {
                            "contentEncoding": "gzip",
                            "messageType": "result",
                            "bindingVersion": AMQP_BINDING
                        }}
                    }),
                );
                channels.insert(
                    reply_channel.clone(),
                    json!({
                        "address": null,
                        "title": format!("{name} replies"),
                        "description": "The caller's reply queue, named by the request's AMQP `reply_to` property (a property, not a header: AsyncAPI has no runtime expression for it). Published to the default exchange with the request's correlation_id.",
                        "messages": {
                            "success": {"$ref": format!("#/components/messages/{}", escape_ref(&ok_id))},
                            "error": {"$ref": "#/components/messages/ErrorReply"}
                        }
                    }),
                );
                op["description"] = json!(format!(
                    "Answers `{name}`. Error types: the handler's own, and {}.",
                    KIT_ERRORS
                        .iter()
                        .map(|(t, why)| format!("`{t}` ({why})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                op["reply"] = json!({
                    "address": {
                        "location": "$message.header#/replyTo",
                        "description": "the request's AMQP reply_to property"
                    },
                    "channel": {"$ref": format!("#/channels/{}", escape_ref(&reply_channel))},
                    "messages": [
                        {"$ref": format!("#/channels/{}/messages/success", escape_ref(&reply_channel))},
                        {"$ref": format!("#/channels/{}/messages/error", escape_ref(&reply_channel))}
                    ]
                });
            } else {
                op["description"] = json!(format!(
                    "Works `{name}`: acked on success; a handler error is retried (x-retry-count), then parked in `{name}.dead`; a payload that does not fit is parked at once."
                ));
            }
            operations.insert(id, op);
        }
        for event in &self.events {
            self.event_json(
                event,
                &mut generator,
                &mut channels,
                &mut operations,
                &mut messages,
            );
        }
        let schemas: Map<String, Value> = generator.take_definitions(true);
        let mut doc = json!({
            "asyncapi": "3.0.0",
            "info": {
                "title": self.service,
                "version": self.version,
                "description": format!("Routes of the `{}` service over RabbitMQ (AMQP 0-9-1), in the wire format of docs/protocol.md: bodies are gzip(UTF-8(JSON)), requests `{{\"data\": …}}`, replies `{{\"success\": true, \"data\": …}}` or `{{\"success\": false, \"error\": {{…}}}}`.", self.service)
            },
            "defaultContentType": "application/json",
            "channels": channels,
            "operations": operations,
            "components": {
                "schemas": schemas,
                "messages": messages
            }
        });
        if !self.retired.is_empty() {
            doc["x-retired"] = self
                .retired
                .iter()
                .map(|(name, why)| json!({"name": name, "reason": why}))
                .collect();
        }
        doc
    }

    /// An event's channel (its routing key on the exchange), message and operation.
    fn event_json(
        &self,
        event: &EventDoc,
        generator: &mut SchemaGenerator,
        channels: &mut Map<String, Value>,
        operations: &mut Map<String, Value>,
        messages: &mut Map<String, Value>,
    ) {
        let key = event.routing_key;
        // Prefixed so that an event never shares an id with a route of the same name.
        let id = format!("event.{}", channel_id(key));
        let payload = (event.payload)(generator).to_value();
        messages.insert(
            id.clone(),
            json!({
                "name": id,
                "title": format!("{key} event ({})", event.type_name),
                "contentType": "application/json",
                "payload": envelope("data", payload),
                "headers": event_headers(),
                "correlationId": {
                    "description": "the event's unique id (the AMQP message_id): subscribers deduplicate by it",
                    "location": "$message.header#/message_id"
                },
                "bindings": {"amqp": {
                    "contentEncoding": "gzip",
                    "messageType": key,
                    "bindingVersion": AMQP_BINDING
                }}
            }),
        );
        channels.insert(
            id.clone(),
            json!({
                "address": key,
                "title": format!("event {key}"),
                "description": format!("Events `{key}` on the `{EXCHANGE}` topic exchange (durable), published through the publisher's transactional outbox: at least once, in commit order per aggregate."),
                "messages": {"event": {"$ref": format!("#/components/messages/{}", escape_ref(&id))}},
                "bindings": {"amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": EXCHANGE,
                        "type": "topic",
                        "durable": true,
                        "autoDelete": false,
                        "vhost": "/"
                    },
                    "bindingVersion": AMQP_BINDING
                }}
            }),
        );
        let (action, description) = match event.direction {
            Direction::Publishes => (
                "send",
                format!("Publishes `{key}` after the change it reports commits."),
            ),
            Direction::Subscribes => (
                "receive",
                format!(
                    "Receives `{key}` on the durable queue `{}` bound to `{EXCHANGE}`; a handler error is retried, then parked in `{}.dead`.",
                    crate::events::subscription_queue(&self.service, key),
                    crate::events::subscription_queue(&self.service, key)
                ),
            ),
        };
        let op_id = match event.direction {
            Direction::Publishes => format!("publish.{}", channel_id(key)),
            Direction::Subscribes => format!("subscribe.{}", channel_id(key)),
        };
        operations.insert(
            op_id,
            json!({
                "action": action,
                "title": format!("{action} {key}"),
                "description": description,
                "channel": {"$ref": format!("#/channels/{}", escape_ref(&id))},
                "messages": [{"$ref": format!("#/channels/{}/messages/event", escape_ref(&id))}]
            }),
        );
    }
}

/// The headers the outbox relay sets on every event.
fn event_headers() -> Value {
    json!({
        "type": "object",
        "properties": {
            AGGREGATE_ID_HEADER: {"type": "string", "description": "the entity the event is about"},
            OCCURRED_AT_HEADER: {"type": "integer", "description": "the commit time, epoch milliseconds"},
            SEQ_HEADER: {"type": "integer", "description": "the outbox row number: increasing per aggregate in commit order"}
        }
    })
}

fn any_json() -> Value {
    json!({"description": "any JSON value (the route has no contract)"})
}

fn envelope(member: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "required": [member],
        "properties": {member: schema}
    })
}

fn success_envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": {
            "success": {"const": true},
            "data": data
        }
    })
}

fn error_reply_message() -> Value {
    json!({
        "name": "ErrorReply",
        "title": "error reply",
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "required": ["success", "error"],
            "properties": {
                "success": {"const": false},
                "error": {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {
                        "type": {
                            "type": "string",
                            "description": format!("the error's type: the handler's own, or one of the kit's: {}", KIT_ERRORS.map(|(t, _)| t).join(", "))
                        },
                        "message": {"type": "string"},
                        "args": {"type": "array"},
                        "trace": {"type": "string", "description": "empty unless the service runs in development mode"}
                    }
                }
            }
        },
        "bindings": {"amqp": {
            "contentEncoding": "gzip",
            "messageType": "result",
            "bindingVersion": AMQP_BINDING
        }}
    })
}

/// The queue binding, with the flags docs/protocol.md declares.
fn queue_binding(kind: Kind, name: &str) -> Value {
    let (durable, arguments) = match kind {
        Kind::Rpc => (false, json!({"x-dead-letter-exchange": RPC_DLX})),
        Kind::Queue => (true, json!({})),
    };
    json!({
        "is": "queue",
        "queue": {
            "name": name,
            "durable": durable,
            "exclusive": false,
            "autoDelete": false,
            "vhost": "/"
        },
        "x-arguments": arguments,
        "bindingVersion": AMQP_BINDING
    })
}

/// Channel and message ids: the route name, which AsyncAPI allows as a map key.
fn channel_id(route: &str) -> String {
    route
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A JSON pointer segment (RFC 6901).
fn escape_ref(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    struct Renamed {
        id: i64,
        name: String,
    }

    impl EventContract for Renamed {
        const ROUTING_KEY: &'static str = "shop.item.renamed";
        fn aggregate_id(&self) -> String {
            self.id.to_string()
        }
    }

    #[test]
    fn published_events_are_send_operations_on_the_exchange() {
        let doc = Document::new("shop").publishes::<Renamed>().to_json();
        let channel = &doc["channels"]["event.shop.item.renamed"];
        assert_eq!(channel["address"], "shop.item.renamed");
        assert_eq!(channel["bindings"]["amqp"]["is"], "routingKey");
        assert_eq!(channel["bindings"]["amqp"]["exchange"]["type"], "topic");
        let op = &doc["operations"]["publish.shop.item.renamed"];
        assert_eq!(op["action"], "send");
        let message = &doc["components"]["messages"]["event.shop.item.renamed"];
        assert_eq!(
            message["payload"]["properties"]["data"]["$ref"],
            "#/components/schemas/Renamed"
        );
        assert_eq!(
            message["bindings"]["amqp"]["messageType"],
            "shop.item.renamed"
        );
        assert!(doc["components"]["schemas"]["Renamed"]["properties"]["name"].is_object());
        assert!(doc.get("x-retired").is_none());
    }

    #[test]
    fn subscriptions_name_their_queue() {
        let doc = Document::new("audit").subscribes::<Renamed>().to_json();
        let op = &doc["operations"]["subscribe.shop.item.renamed"];
        assert_eq!(op["action"], "receive");
        assert!(
            op["description"]
                .as_str()
                .unwrap()
                .contains("`audit.events.shop.item.renamed`"),
            "{op}"
        );
    }

    #[test]
    fn retired_routes_are_listed() {
        let doc = Document::new("shop")
            .retired(
                "shop.items.create",
                "every caller uses shop.items.create.v2",
            )
            .to_json();
        assert_eq!(doc["x-retired"][0]["name"], "shop.items.create");
        assert_eq!(
            doc["x-retired"][0]["reason"],
            "every caller uses shop.items.create.v2"
        );
    }
}
