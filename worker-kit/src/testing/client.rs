//! The in-process tier: a route called by contract, without a broker.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::access::AccessPolicy;
use crate::config::{Config, Mode};
use crate::handler::budget::DecodeBudget;
use crate::handler::extract::{Meta, parse_payload};
use crate::handler::routes::BoundHandler;
use crate::queue::QueueWorker;
use crate::queue::Worked;
use crate::queue::work::{WorkSettings, work};
use crate::rpc::answer::{AnswerSettings, answer};
use crate::rpc::{CallError, RpcWorker};
use crate::wire::envelope::{self, Encoding, Reply};
use crate::{Contract, TaskContract};

/// Calls a worker's routes in-process, through the same decode → handler (within its
/// deadline) → encode code the workers run per delivery.
///
/// What it cannot show: redelivery, prefetch, dead-lettering, publisher confirms and
/// anything else the broker decides; use [`BrokerFixture`](super::BrokerFixture) for those.
#[derive(Clone)]
pub struct TestClient {
    rpc: HashMap<Arc<str>, BoundHandler>,
    queue: HashMap<Arc<str>, (BoundHandler, u32)>,
    settings: AnswerSettings,
    /// `RPC_ANONYMOUS` and `ROUTE_ALLOW` of the config, as a Runner would apply them.
    access: AccessPolicy,
    default_max_retries: u32,
    encoding: Encoding,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("rpc", &self.rpc.keys().collect::<Vec<_>>())
            .field("queue", &self.queue.keys().collect::<Vec<_>>())
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A reply as it would go on the wire.
#[derive(Debug, Clone)]
pub struct TestReply {
    /// The AMQP `type` property: `result`, or `error` when the request never reached
    /// the handler.
    pub amqp_type: &'static str,
    /// The encoding of the reply (that of the request).
    pub encoding: Encoding,
    /// The encoded reply envelope.
    pub body: Vec<u8>,
}

impl TestClient {
    /// A client with the default settings (body limits of [`Config::default`],
    /// development mode: error replies carry their trace), sending gzip bodies as the
    /// Python seed does.
    pub fn new() -> Self {
        Self::with_config(&Config {
            mode: Mode::Development,
            ..Config::default()
        })
    }

    /// A client with the body limits, decode budget, mode, retries, `RPC_ANONYMOUS` and
    /// `ROUTE_ALLOW` of `config`.
    pub fn with_config(config: &Config) -> Self {
        Self {
            rpc: HashMap::new(),
            queue: HashMap::new(),
            settings: AnswerSettings {
                limits: config.limits(),
                budget: DecodeBudget::new(config.decode_budget_bytes),
                development: config.is_development(),
                handler_timeout: config.handler_timeout,
            },
            access: AccessPolicy::from_config(config),
            default_max_retries: config.max_retries,
            encoding: Encoding::Gzip,
        }
    }

    /// Sends plain JSON bodies instead of gzip.
    #[must_use]
    pub fn plain_json(mut self) -> Self {
        self.encoding = Encoding::Plain;
        self
    }

    /// Adds an RPC worker's routes (its state given: [`Worker::with_state`](crate::worker::Worker::with_state)).
    ///
    /// # Panics
    ///
    /// When a route is registered twice, here or across workers (the Runner refuses to
    /// start then, too).
    #[must_use]
    #[track_caller]
    pub fn rpc(mut self, worker: RpcWorker) -> Self {
        for (name, handler) in bound_or_panic(worker.into_bound(&self.access)) {
            self.refuse_duplicate(&name);
            self.rpc.insert(name, handler);
        }
        self
    }

    /// Adds a queue worker's routes (its state given), with its retries.
    ///
    /// # Panics
    ///
    /// As [`TestClient::rpc`].
    #[must_use]
    #[track_caller]
    pub fn queue(mut self, worker: QueueWorker) -> Self {
        let retries = worker
            .kind
            .max_retries_set()
            .unwrap_or(self.default_max_retries);
        for (name, handler) in bound_or_panic(worker.into_bound(&self.access)) {
            self.refuse_duplicate(&name);
            self.queue.insert(name, (handler, retries));
        }
        self
    }

    #[track_caller]
    fn refuse_duplicate(&self, name: &str) {
        assert!(
            !self.rpc.contains_key(name) && !self.queue.contains_key(name),
            "route {name} is registered twice"
        );
    }

    /// Calls contract `C`'s route.
    ///
    /// # Errors
    ///
    /// [`CallError::Remote`] for an error reply (the handler's error, a `ValidationError`
    /// for a payload that does not fit, a `Timeout` past the deadline);
    /// [`CallError::NoRoute`] when no added worker serves the route;
    /// [`CallError::Codec`] when the reply does not fit `C::Response`.
    pub async fn call<C: Contract>(&self, request: &C) -> Result<C::Response, CallError> {
        self.call_with(request, Meta::default()).await
    }

    /// Calls contract `C`'s route with `meta` as the handler sees it (deadline,
    /// headers, correlation id, `reply_to`, retry count, caller); its `route` is set for
    /// you. [`Meta::default`] is an anonymous caller: set `meta.caller` to
    /// [`Caller::verified`](crate::access::Caller::verified) to call a route with an allow
    /// list as one of its broker users.
    ///
    /// # Errors
    ///
    /// As [`TestClient::call`].
    pub async fn call_with<C: Contract>(
        &self,
        request: &C,
        meta: Meta,
    ) -> Result<C::Response, CallError> {
        self.call_route(C::ROUTE, request, meta).await
    }

    /// Calls `route` with any serializable payload (for routes without a contract, or a
    /// payload that does not fit on purpose).
    ///
    /// # Errors
    ///
    /// As [`TestClient::call`].
    pub async fn call_route<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        route: &str,
        data: &T,
        meta: Meta,
    ) -> Result<R, CallError> {
        let codec = |message: String| CallError::Codec {
            route: route.to_owned(),
            message,
        };
        let body = envelope::encode_request(data, self.encoding)
            .map_err(|e| codec(format!("request cannot be serialized: {e}")))?;
        let reply = self.request_body(route, &body, meta).await?;
        match envelope::decode_reply(&reply.body, &self.settings.limits) {
            Ok(Reply::Success(raw)) => parse_payload(raw.get()).map_err(|e| {
                codec(format!(
                    "reply does not fit the expected type: {}",
                    e.message
                ))
            }),
            Ok(Reply::Error(error)) => Err(CallError::Remote {
                route: route.to_owned(),
                error,
            }),
            Err(e) => Err(codec(e.to_string())),
        }
    }

    /// Sends a raw request body (gzip or plain, any bytes) to `route` and returns the
    /// reply as it would be published.
    ///
    /// # Errors
    ///
    /// [`CallError::NoRoute`] when no added worker serves the route.
    pub async fn request_body(
        &self,
        route: &str,
        body: &[u8],
        meta: Meta,
    ) -> Result<TestReply, CallError> {
        let Some((name, handler)) = self.rpc.get_key_value(route) else {
            return Err(CallError::NoRoute {
                route: route.to_owned(),
            });
        };
        let meta = Meta {
            route: name.clone(),
            ..meta
        };
        let a = answer(body, None, meta, handler, &self.settings).await;
        Ok(TestReply {
            amqp_type: a.amqp_type,
            encoding: a.encoding,
            body: a.body,
        })
    }

    /// Sends task `T` to its queue route and says what the queue worker would do with it.
    ///
    /// # Errors
    ///
    /// [`CallError::NoRoute`] when no added queue worker serves the route (the broker would
    /// return the message as unroutable); [`CallError::Codec`] when the task cannot be
    /// serialized.
    pub async fn send<T: TaskContract>(&self, task: &T) -> Result<Worked, CallError> {
        self.send_with(task, Meta::default()).await
    }

    /// Sends task `T` with `meta` (e.g. a `retry_count` to see what the last retry does).
    ///
    /// # Errors
    ///
    /// As [`TestClient::send`].
    pub async fn send_with<T: TaskContract>(
        &self,
        task: &T,
        meta: Meta,
    ) -> Result<Worked, CallError> {
        let body = envelope::encode_request(task, self.encoding).map_err(|e| CallError::Codec {
            route: T::ROUTE.to_owned(),
            message: format!("the task cannot be serialized: {e}"),
        })?;
        self.send_body(T::ROUTE, &body, meta).await
    }

    /// Sends a raw body (any bytes) to queue route `route`.
    ///
    /// # Errors
    ///
    /// [`CallError::NoRoute`] when no added queue worker serves the route.
    pub async fn send_body(
        &self,
        route: &str,
        body: &[u8],
        meta: Meta,
    ) -> Result<Worked, CallError> {
        let Some((name, (handler, retries))) = self.queue.get_key_value(route) else {
            return Err(CallError::NoRoute {
                route: route.to_owned(),
            });
        };
        let meta = Meta {
            route: name.clone(),
            ..meta
        };
        let settings = WorkSettings {
            limits: self.settings.limits,
            budget: self.settings.budget.clone(),
            max_retries: *retries,
            handler_timeout: self.settings.handler_timeout,
        };
        Ok(work(body, meta, handler, &settings).await)
    }
}

#[track_caller]
fn bound_or_panic<T>(r: Result<T, crate::Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Anonymous, Caller};
    use crate::{ErrorReply, Payload};

    async fn echo(Payload(v): Payload<serde_json::Value>) -> Result<serde_json::Value, ErrorReply> {
        Ok(v)
    }

    fn meta_from(caller: Caller) -> Meta {
        Meta {
            caller,
            ..Meta::default()
        }
    }

    #[tokio::test]
    async fn allow_lists_and_anonymous_in_process() {
        let config = Config {
            rpc_anonymous: Anonymous::Deny,
            ..Config::default()
        };
        let client = TestClient::with_config(&config)
            .rpc(
                RpcWorker::new()
                    .route("listed", echo)
                    .allow("listed", ["greeter", "billing-*"])
                    .route("open", echo),
            )
            .queue(
                QueueWorker::new()
                    .route("work", echo)
                    .allow("work", ["ops"]),
            );
        let call = |route: &'static str, caller: Caller| {
            let client = client.clone();
            async move {
                client
                    .call_route::<_, serde_json::Value>(route, &1, meta_from(caller))
                    .await
            }
        };
        assert!(call("listed", Caller::verified("billing-eu")).await.is_ok());
        let refused = call("listed", Caller::verified("catalog"))
            .await
            .unwrap_err();
        assert_eq!(refused.remote_type(), Some("Forbidden"));
        let refused = call("open", Caller::anonymous()).await.unwrap_err();
        assert_eq!(
            refused.remote_type(),
            Some("Forbidden"),
            "RPC_ANONYMOUS=deny"
        );
        assert!(call("open", Caller::verified("anyone")).await.is_ok());

        let body = envelope::encode_request(&1, Encoding::Plain).unwrap();
        assert_eq!(
            client
                .send_body("work", &body, meta_from(Caller::verified("ops")))
                .await
                .unwrap(),
            Worked::Acked
        );
        match client
            .send_body("work", &body, meta_from(Caller::verified("greeter")))
            .await
            .unwrap()
        {
            Worked::Parked(e) => assert_eq!(e.error_type, "Forbidden"),
            other => panic!("a refused work message is parked, not {other:?}"),
        }
    }

    async fn refuse(Payload(v): Payload<String>) -> Result<(), ErrorReply> {
        match v.as_str() {
            "permanent" => Err(ErrorReply::not_found("no such customer").permanent()),
            _ => Err(ErrorReply::unavailable("try later")),
        }
    }

    #[tokio::test]
    async fn a_permanent_error_parks_without_a_retry() {
        let client = TestClient::new().queue(QueueWorker::new().max_retries(3).route("w", refuse));
        let send = |text: &str| {
            let body = envelope::encode_request(&text, Encoding::Plain).unwrap();
            let client = client.clone();
            async move { client.send_body("w", &body, Meta::default()).await.unwrap() }
        };
        match send("permanent").await {
            Worked::Parked(e) => {
                assert_eq!(e.error_type, "NotFound");
                assert!(e.is_permanent());
            }
            other => panic!("a permanent error is parked at once, not {other:?}"),
        }
        assert_eq!(send("transient").await, Worked::Retried { retry_count: 1 });
        let body = envelope::encode_request(&"x", Encoding::Plain).unwrap();
        assert!(
            matches!(
                client.send_body("nowhere", &body, Meta::default()).await,
                Err(CallError::NoRoute { route }) if route == "nowhere"
            ),
            "a route no queue worker serves is not routed"
        );
    }

    #[test]
    #[should_panic(expected = "allow list names route lisetd")]
    fn an_allow_list_for_a_route_not_served_is_refused() {
        let _ = TestClient::new().rpc(
            RpcWorker::new()
                .route("listed", echo)
                .allow("lisetd", ["greeter"]),
        );
    }
}
