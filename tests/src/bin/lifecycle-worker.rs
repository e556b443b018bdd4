//! A small RPC service for the lifecycle tests (signals during startup, supervision),
//! started as a real process. Settings from the environment: `LIFECYCLE_ROUTE` (its one
//! route; a request to it closes the process's broker handle, which ends every worker
//! while the process still runs), `LIFECYCLE_DSN` (optional: a database registered with
//! the Runner, so startup waits for it), plus the kit's usual variables.

use std::convert::Infallible;

use worker_kit::db::{Client, DbConfig};
use worker_kit::rpc::RpcWorker;
use worker_kit::{Broker, Payload, State};

async fn close_broker(
    State(broker): State<Broker>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<&'static str, Infallible> {
    // Closing the handle stops reconnects and ends the consume loops: from the Runner's
    // side this is a worker that ended while nothing asked it to.
    tokio::spawn(async move { broker.close().await });
    Ok("closing")
}

fn main() -> std::process::ExitCode {
    worker_kit::runner::main("lifecycle-worker", |setup| async move {
        let route = std::env::var("LIFECYCLE_ROUTE")
            .map_err(|_| worker_kit::Error::Config("LIFECYCLE_ROUTE is required".into()))?;
        let worker = RpcWorker::new()
            .route(&route, close_broker)
            .with_state(setup.broker.clone());
        let mut runner = setup.runner().register_worker(worker);
        if let Ok(dsn) = std::env::var("LIFECYCLE_DSN") {
            let mut config = DbConfig::from_env("main", "lifecycle")?;
            config.dsn = dsn.into();
            runner = runner.register_database(
                Client::new("main", &config)
                    .map_err(|e| worker_kit::Error::Database(e.to_string()))?,
            );
        }
        Ok(runner)
    })
}
