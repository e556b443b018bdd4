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
//! ```
//! use std::convert::Infallible;
//! use worker_kit::{Payload, asyncapi::Document, rpc::RpcWorker};
//!
//! async fn echo(Payload(v): Payload<serde_json::Value>) -> Result<serde_json::Value, Infallible> {
//!     Ok(v)
//! }
//!
//! let doc = Document::new("echo").rpc(&RpcWorker::new().route("echo", echo)).to_json();
//! assert_eq!(doc["asyncapi"], "3.0.0");
//! assert_eq!(doc["channels"]["echo"]["address"], "echo");
//! ```

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::handler::routes::RouteDoc;
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

/// A service's AsyncAPI document, built from its workers.
#[derive(Debug, Clone)]
pub struct Document {
    service: String,
    version: String,
    routes: Vec<(Kind, String, DocEntry)>,
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
        }
    }

    /// The service's version (`info.version`).
    #[must_use]
    pub fn version(mut self, version: &str) -> Self {
        version.clone_into(&mut self.version);
        self
    }

    /// Adds an RPC worker's routes (a worker made with `for_docs` will do).
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
        let schemas: Map<String, Value> = generator.take_definitions(true);
        json!({
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
        })
    }
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
