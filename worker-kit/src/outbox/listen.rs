//! The `LISTEN` connection a relay wakes on: a writer's `NOTIFY` at commit wakes it at
//! once instead of at its next poll.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use worker_kit_pg_tls::MakeRustlsConnect;

use crate::backoff::Pauses;

/// Keeps a `LISTEN channel` connection and wakes the relay on every notification (and after each
/// reconnect, in case one was missed while it was down).
pub(super) async fn wake_on_notify(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channel: &'static str,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    // Failed attempts in a row wait longer each time; a LISTEN that worked starts over.
    let pauses = Pauses::default();
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut conn)) => {
                let (ended_tx, ended) = tokio::sync::oneshot::channel::<()>();
                let waker = wake.clone();
                let driver = tokio::spawn(async move {
                    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(_)) => waker.notify_one(),
                            Ok(_) => {}
                            Err(e) => {
                                warn!(error = %e, channel, "relay: LISTEN connection failed; polling until it is back");
                                break;
                            }
                        }
                    }
                    let _ = ended_tx.send(());
                });
                match client.batch_execute(&format!("LISTEN {channel}")).await {
                    Ok(()) => {
                        pauses.reset();
                        wake.notify_one();
                        tokio::select! {
                            () = shutdown.cancelled() => { driver.abort(); return; }
                            _ = ended => {}
                        }
                    }
                    Err(e) => warn!(error = %e, channel, "relay: LISTEN failed; polling"),
                }
                driver.abort();
            }
            Err(e) => {
                warn!(error = %e, channel, "relay: cannot open the LISTEN connection; polling")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pauses.next()) => {}
        }
    }
}
