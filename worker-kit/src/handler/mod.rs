//! Handlers: the `Handler` trait (what makes an `async fn` usable as a route), the
//! extractors its arguments are made of ([`extract`]), and the route tables and the traits
//! the route macros implement ([`routes`]).
//!
//! Implemented for every `async fn` (or closure returning a future) of up to eight
//! extractor arguments that returns `Result<T, E>` with `T: Serialize` and
//! `E: IntoErrorReply`, in the manner of axum's handlers.

pub(crate) mod budget;
pub(crate) mod delivery;
pub mod extract;
pub(crate) mod offload;
pub mod routes;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use serde::Serialize;

use crate::handler::extract::{FromMessage, Incoming, Payload};
use crate::wire::reply_error::{ErrorReply, IntoErrorReply};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How one message went through its handler.
#[derive(Debug)]
pub enum Outcome {
    /// The handler returned `Ok`; its value serialized as JSON.
    Ok(Vec<u8>),
    /// The message never reached the handler (payload did not fit, and the like).
    Rejected(ErrorReply),
    /// The handler returned `Err` (or panicked).
    Failed(ErrorReply),
}

/// What a handler may return: `Result<T: Serialize, E: IntoErrorReply>`.
#[diagnostic::on_unimplemented(
    message = "handlers must return `Result<T, E>` where `T: Serialize` and `E: IntoErrorReply`, not `{Self}`",
    note = "use `std::convert::Infallible` as `E` for a handler that cannot fail, or `worker_kit::ErrorReply` for ad-hoc errors"
)]
pub trait HandlerReturn: Send {
    /// The success type (checked against a contract's response type).
    type Ok;
    /// Serializes the success value or converts the error.
    fn into_outcome(self) -> Outcome;
}

impl<T: Serialize + Send, E: IntoErrorReply + Send> HandlerReturn for Result<T, E> {
    type Ok = T;
    fn into_outcome(self) -> Outcome {
        match self {
            Ok(v) => match serde_json::to_vec(&v) {
                Ok(json) => Outcome::Ok(json),
                Err(e) => Outcome::Failed(ErrorReply::internal(&e).with_args(Vec::new())),
            },
            Err(e) => Outcome::Failed(e.into_error_reply()),
        }
    }
}

/// An async function usable as a route's handler. `Args` is the tuple of its argument
/// types and `S` the worker's state type; you never name either.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler for a worker with state `{S}`",
    label = "not a handler",
    note = "a handler is an `async fn` of at most 8 arguments, each an extractor (`Payload<T>`, `State<S>`, `Meta`), returning `Result<T: Serialize, E: IntoErrorReply>`",
    note = "`State<X>` only works when every handler of the worker takes the same X, given last with `.with_state(x)` (`RpcWorker::new().register(a).register(b).with_state(x)`)"
)]
pub trait Handler<Args, S>: Clone + Send + Sync + Sized + 'static {
    /// The success type the handler returns.
    type Ok;
    /// Extracts the arguments and runs the handler.
    fn call(self, msg: Incoming, state: S) -> BoxFuture<Outcome>;
}

macro_rules! impl_handler {
    ($($ty:ident),*) => {
        #[allow(non_snake_case, unused_variables, clippy::unused_unit)]
        impl<F, Fut, R, S, $($ty,)*> Handler<($($ty,)*), S> for F
        where
            F: FnOnce($($ty,)*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: HandlerReturn,
            S: Send + Sync + 'static,
            $($ty: FromMessage<S> + Send + 'static,)*
        {
            type Ok = R::Ok;
            fn call(self, msg: Incoming, state: S) -> BoxFuture<Outcome> {
                $(
                    let $ty = match $ty::from_message(&msg, &state) {
                        Ok(v) => v,
                        Err(e) => return Box::pin(std::future::ready(Outcome::Rejected(e))),
                    };
                )*
                drop(state);
                Box::pin(async move { self($($ty,)*).await.into_outcome() })
            }
        }
    };
}

impl_handler!();
impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);

/// A handler with its types erased, so routes of different signatures share one table.
pub(crate) type BoxedHandler<S> = Arc<dyn Fn(Incoming, S) -> BoxFuture<Outcome> + Send + Sync>;

/// Erases a handler's types. A panic anywhere in it (its extractors, a
/// `deserialize_with`, the handler's body) becomes an `Internal` failure instead of
/// taking the message's task down with its delivery unsettled.
pub(crate) fn boxed<H, Args, S>(handler: H) -> BoxedHandler<S>
where
    H: Handler<Args, S>,
    S: Send + 'static,
{
    Arc::new(move |msg, state| {
        // Extractors run here, before the handler's future exists.
        let fut =
            match std::panic::catch_unwind(AssertUnwindSafe(|| handler.clone().call(msg, state))) {
                Ok(fut) => fut,
                Err(panic) => return Box::pin(std::future::ready(panicked(&*panic))),
            };
        Box::pin(
            AssertUnwindSafe(fut)
                .catch_unwind()
                .map(|r| r.unwrap_or_else(|panic| panicked(&*panic))),
        )
    })
}

/// The failure a panic becomes: `Internal`, with the panic's message in the trace.
pub(crate) fn panicked(panic: &(dyn std::any::Any + Send)) -> Outcome {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    let err = std::io::Error::other(format!("handler panicked: {what}"));
    Outcome::Failed(ErrorReply::internal(&err))
}

/// Index markers for [`ContainsPayload`]: the position of the `Payload<C>` argument.
#[doc(hidden)]
pub mod at {
    /// Position 0.
    #[derive(Debug)]
    pub struct P0;
    /// Position 1.
    #[derive(Debug)]
    pub struct P1;
    /// Position 2.
    #[derive(Debug)]
    pub struct P2;
    /// Position 3.
    #[derive(Debug)]
    pub struct P3;
    /// Position 4.
    #[derive(Debug)]
    pub struct P4;
    /// Position 5.
    #[derive(Debug)]
    pub struct P5;
    /// Position 6.
    #[derive(Debug)]
    pub struct P6;
    /// Position 7.
    #[derive(Debug)]
    pub struct P7;
}

/// Proof that a handler's argument tuple takes `Payload<C>` somewhere; `I` is the
/// position, inferred. Used so a contract route cannot be served by a handler that reads
/// another type.
#[diagnostic::on_unimplemented(
    message = "a handler for contract `{C}` must take a `Payload<{C}>` argument",
    label = "this handler's arguments do not include `Payload<{C}>`"
)]
pub trait ContainsPayload<C, I> {}

macro_rules! contains {
    ($idx:ident; $($before:ident),*; $($after:ident),*) => {
        impl<C, $($before,)* $($after,)*> ContainsPayload<C, at::$idx> for ($($before,)* Payload<C>, $($after,)*) {}
    };
}

contains!(P0;;);
contains!(P0;; A1);
contains!(P1; A0;);
contains!(P0;; A1, A2);
contains!(P1; A0; A2);
contains!(P2; A0, A1;);
contains!(P0;; A1, A2, A3);
contains!(P1; A0; A2, A3);
contains!(P2; A0, A1; A3);
contains!(P3; A0, A1, A2;);
contains!(P0;; A1, A2, A3, A4);
contains!(P1; A0; A2, A3, A4);
contains!(P2; A0, A1; A3, A4);
contains!(P3; A0, A1, A2; A4);
contains!(P4; A0, A1, A2, A3;);
contains!(P0;; A1, A2, A3, A4, A5);
contains!(P1; A0; A2, A3, A4, A5);
contains!(P2; A0, A1; A3, A4, A5);
contains!(P3; A0, A1, A2; A4, A5);
contains!(P4; A0, A1, A2, A3; A5);
contains!(P5; A0, A1, A2, A3, A4;);
contains!(P0;; A1, A2, A3, A4, A5, A6);
contains!(P1; A0; A2, A3, A4, A5, A6);
contains!(P2; A0, A1; A3, A4, A5, A6);
contains!(P3; A0, A1, A2; A4, A5, A6);
contains!(P4; A0, A1, A2, A3; A5, A6);
contains!(P5; A0, A1, A2, A3, A4; A6);
contains!(P6; A0, A1, A2, A3, A4, A5;);
contains!(P0;; A1, A2, A3, A4, A5, A6, A7);
contains!(P1; A0; A2, A3, A4, A5, A6, A7);
contains!(P2; A0, A1; A3, A4, A5, A6, A7);
contains!(P3; A0, A1, A2; A4, A5, A6, A7);
contains!(P4; A0, A1, A2, A3; A5, A6, A7);
contains!(P5; A0, A1, A2, A3, A4; A6, A7);
contains!(P6; A0, A1, A2, A3, A4, A5; A7);
contains!(P7; A0, A1, A2, A3, A4, A5, A6;);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::extract::{Meta, State};
    use std::convert::Infallible;

    async fn echo(Payload(s): Payload<String>) -> Result<String, Infallible> {
        Ok(s)
    }

    async fn with_state(
        State(n): State<u32>,
        Payload(x): Payload<u32>,
        _m: Meta,
    ) -> Result<u32, ErrorReply> {
        if x == 0 {
            return Err(ErrorReply::bad_request("zero"));
        }
        Ok(n * x)
    }

    async fn panics() -> Result<(), Infallible> {
        panic!("boom")
    }

    fn run<H: Handler<A, S>, A, S: Send + 'static>(
        h: H,
        data: serde_json::Value,
        state: S,
    ) -> Outcome {
        let msg = Incoming::for_test("r", &data).unwrap();
        futures::executor::block_on(boxed(h)(msg, state))
    }

    #[test]
    fn ok_is_serialized() {
        match run(echo, serde_json::json!("hi"), ()) {
            Outcome::Ok(json) => assert_eq!(json, br#""hi""#),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn state_and_errors() {
        assert!(
            matches!(run(with_state, serde_json::json!(3), 7u32), Outcome::Ok(j) if j == b"21")
        );
        match run(with_state, serde_json::json!(0), 7u32) {
            Outcome::Failed(e) => assert_eq!(e.error_type, "BadRequest"),
            other => panic!("{other:?}"),
        }
        match run(with_state, serde_json::json!("x"), 7u32) {
            Outcome::Rejected(e) => assert_eq!(e.error_type, "ValidationError"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn panic_becomes_internal() {
        match run(panics, serde_json::Value::Null, ()) {
            Outcome::Failed(e) => {
                assert_eq!(e.error_type, "Internal");
                assert_eq!(e.message, "internal error");
                assert!(e.trace[0].contains("boom"));
            }
            other => panic!("{other:?}"),
        }
    }

    struct Exploding;

    impl<S> FromMessage<S> for Exploding {
        fn from_message(_: &Incoming, _: &S) -> Result<Self, ErrorReply> {
            panic!("extractor exploded")
        }
    }

    async fn takes_exploding(_: Exploding) -> Result<(), Infallible> {
        Ok(())
    }

    #[test]
    fn extractor_panic_becomes_internal() {
        match run(takes_exploding, serde_json::Value::Null, ()) {
            Outcome::Failed(e) => {
                assert_eq!(e.error_type, "Internal");
                assert!(e.trace[0].contains("extractor exploded"), "{:?}", e.trace);
            }
            other => panic!("{other:?}"),
        }
    }

    fn assert_contains<A: ContainsPayload<C, I>, C, I>() {}

    #[test]
    fn payload_position_is_found() {
        assert_contains::<(Payload<u8>,), u8, _>();
        assert_contains::<(Meta, Payload<u8>), u8, _>();
        assert_contains::<(State<()>, Meta, Payload<u8>), u8, _>();
    }
}
