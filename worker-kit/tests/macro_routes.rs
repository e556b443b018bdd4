//! What the route macros accept: handlers of every shape registered on both worker kinds.
//! (What they refuse, with which error, is in `macros.rs`, through trybuild.) An ordinary
//! test rather than a trybuild pass case: it builds with the workspace's own artifacts,
//! where a pass case makes trybuild build every dependency again, with codegen.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};
use worker_kit::queue::QueueWorker;
use worker_kit::rpc::RpcWorker;
use worker_kit::{Contract, ErrorReply, Meta, Payload, Runner, State, TaskContract, rpc, task};

#[derive(Clone)]
struct App {
    greeting: String,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

impl Contract for Add {
    const ROUTE: &'static str = "calc.add";
    type Response = i64;
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Resize(String);

impl TaskContract for Resize {
    const ROUTE: &'static str = "images.resize";
}

/// Says hello.
#[rpc("hello")]
async fn hello(
    State(app): State<App>,
    Payload(name): Payload<String>,
) -> Result<String, Infallible> {
    Ok(format!("{} {name}", app.greeting))
}

#[rpc(contract = Add, allow = ["greeter", "billing-*"])]
async fn add(_meta: Meta, Payload(req): Payload<Add>) -> Result<i64, ErrorReply> {
    req.a
        .checked_add(req.b)
        .ok_or_else(|| ErrorReply::bad_request("overflow"))
}

#[rpc("no-args")]
async fn no_args() -> Result<(), Infallible> {
    Ok(())
}

#[task(contract = Resize)]
async fn resize(Payload(Resize(path)): Payload<Resize>) -> Result<(), ErrorReply> {
    if path.is_empty() {
        return Err(ErrorReply::bad_request("empty path"));
    }
    Ok(())
}

#[task("cleanup", allow = ["ops"],)]
async fn cleanup(meta: Meta) -> Result<(), Infallible> {
    let _ = meta.redelivered;
    let _who: Option<&str> = meta.caller.verified_user();
    Ok(())
}

/// A worker whose handlers take no state is `Worker<K, ()>` without saying so: the Runner
/// takes only that form, which settles the state type left open by the handlers.
#[allow(dead_code)]
fn stateless_workers_register_without_annotations(runner: Runner) -> Runner {
    runner
        .register_worker(QueueWorker::new().register(resize))
        .register_worker(RpcWorker::new().register(no_args))
}

#[test]
fn macro_routes_compile_and_register() {
    let app = App {
        greeting: "hi".into(),
    };
    let _rpc = RpcWorker::new()
        .register(hello)
        .register(add)
        .register(no_args)
        .with_state(app);
    let _queue: QueueWorker = QueueWorker::new().register(resize).register(cleanup);
    assert_eq!(hello::ROUTE, "hello");
    assert_eq!(add::ROUTE, "calc.add");
    assert_eq!(resize::ROUTE, "images.resize");
    // The handler stays callable directly.
    let _fut = no_args::handler();
}
