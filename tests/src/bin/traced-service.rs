//! A service started as every kit service is (`worker_kit::runner::main`: settings, logs and,
//! with the `otel` feature, traces exported as the `OTEL_*` variables say), for the otel
//! test's OTLP export. It serves `TRACED_ROUTE`, which calls `TRACED_ROUTE.back` (served here
//! too) and returns its answer, so one call makes a `process`, a nested `send` and a second
//! `process` span.

use std::process::ExitCode;

use serde_json::Value;
use worker_kit::rpc::{CallError, RpcClient, RpcWorker};
use worker_kit::{ErrorReply, Payload, State};

#[derive(Clone)]
struct App {
    rpc: RpcClient,
    back: String,
}

async fn front(State(app): State<App>, Payload(v): Payload<Value>) -> Result<Value, CallError> {
    app.rpc.call_json(&app.back, v).await
}

async fn back(Payload(v): Payload<Value>) -> Result<Value, ErrorReply> {
    Ok(v)
}

fn main() -> ExitCode {
    let Ok(route) = std::env::var("TRACED_ROUTE") else {
        eprintln!("traced-service: TRACED_ROUTE is required");
        return ExitCode::from(2);
    };
    worker_kit::runner::main("traced-service", move |setup| async move {
        let back_route = format!("{route}.back");
        let rpc = RpcClient::new(&setup.broker, &setup.config).await?;
        let app = App {
            rpc,
            back: back_route.clone(),
        };
        Ok(setup.runner().register_worker(
            RpcWorker::new()
                .route(&route, front)
                .route(&back_route, back)
                .with_state(app),
        ))
    })
}
