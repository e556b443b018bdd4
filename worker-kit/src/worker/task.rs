//! A service's own background task ([`Runner::register_task`](crate::runner::Runner::register_task)),
//! run by the Runner beside its workers and held to the same rules: one that ends while
//! nothing asked it to stops the process with an error, and a stop cancels its token and
//! waits for it at most `DRAIN_TIMEOUT_MS`.

use std::future::Future;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::handoff::{Runnable, WorkerContext, sealed};
use crate::Error;
use crate::handler::BoxFuture;

/// What a task may fail with: any error (the kit's, a driver's, `anyhow`'s, a `String`).
pub(crate) type TaskError = Box<dyn std::error::Error + Send + Sync>;

/// A named background task: started with a token the Runner cancels when it stops.
pub(crate) struct Task {
    name: String,
    start: Box<dyn FnOnce(CancellationToken) -> BoxFuture<Result<(), TaskError>> + Send>,
}

impl Task {
    pub(crate) fn new<F, Fut, E>(name: &str, start: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<TaskError>,
    {
        let start = move |token| -> BoxFuture<Result<(), TaskError>> {
            let fut = start(token);
            Box::pin(async move { fut.await.map_err(Into::into) })
        };
        Self {
            name: name.to_owned(),
            start: Box::new(start),
        }
    }
}

/// The error a task that returned `Err(e)` stands for.
fn failed(task: String, e: &TaskError) -> Error {
    Error::Task {
        task,
        problem: format!("failed: {e}"),
    }
}

impl sealed::Sealed for Task {}

#[async_trait]
impl Runnable for Task {
    fn kind(&self) -> super::WorkerKind {
        super::WorkerKind::Task
    }

    fn route_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn run(self: Box<Self>, ctx: WorkerContext) -> Result<(), Error> {
        let Task { name, start } = *self;
        // A token of its own: a task that cancels it stops itself, not the process.
        let mut running = start(ctx.shutdown.child_token());
        let _ = ctx.ready.send(Ok(format!("task {name} running")));
        tokio::select! {
            ended = &mut running => {
                return Err(match ended {
                    Ok(()) => Error::Task {
                        task: name,
                        problem: "ended while nothing asked it to (a task runs until its token is cancelled)".to_owned(),
                    },
                    Err(e) => failed(name, &e),
                });
            }
            () = ctx.shutdown.cancelled() => {}
        }
        match tokio::time::timeout(ctx.config.drain_timeout, running).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(failed(name, &e)),
            Err(_) => {
                // Dropping its future ends it at its next await.
                warn!(
                    task = name.as_str(),
                    drain_timeout_ms = ctx.config.drain_timeout.as_millis() as u64,
                    "task did not stop within DRAIN_TIMEOUT_MS of its token's cancellation; aborted"
                );
                Ok(())
            }
        }
    }
}
