//! The `greeter` service: calls the `example` service over RPC through the typed
//! contracts in `stubs`, the way one service uses another.

use stubs::example::HelloWorld;
use stubs::greeter::{Greet, Greeting};
use worker_kit::asyncapi::Document;
use worker_kit::rpc::{CallError, RpcClient, RpcWorker};
use worker_kit::{Payload, Runner, Setup, State, rpc};

/// The service's name.
pub const SERVICE: &str = "greeter";

/// Shared state of the greeter's handlers.
#[derive(Clone, Debug)]
pub struct App {
    /// Calls other services.
    pub rpc: RpcClient,
}

/// Greets by asking `example` for its hello. The call inherits what is left of our
/// caller's deadline by itself (the RPC worker sets it around the handler).
#[rpc(contract = Greet)]
pub async fn greet(
    State(app): State<App>,
    Payload(req): Payload<Greet>,
) -> Result<Greeting, CallError> {
    let hello = app.rpc.call(&HelloWorld(Some(req.name.clone()))).await?;
    Ok(Greeting {
        message: format!("{hello} (to {})", req.name),
    })
}

/// The service's RPC routes, still needing their [`App`] (given last, with
/// `.with_state(app)`; the AsyncAPI document describes them without it).
pub fn rpc_worker() -> RpcWorker<App> {
    RpcWorker::new().register(greet)
}

/// The service's AsyncAPI 3.0 document (what `greeter asyncapi` prints), without a broker.
pub fn asyncapi() -> Document {
    Document::new(SERVICE)
        .version(env!("CARGO_PKG_VERSION"))
        .rpc(&rpc_worker())
}

/// Builds the service on `setup`.
///
/// # Errors
///
/// When the RPC client cannot set up its reply consumer.
pub async fn build(setup: Setup) -> Result<Runner, worker_kit::Error> {
    let rpc = RpcClient::new(&setup.broker, &setup.config).await?;
    Ok(setup
        .runner()
        .register_worker(rpc_worker().with_state(App { rpc })))
}
