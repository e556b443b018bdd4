//! A service's own background task (`Runner::register_task`): it runs beside the workers,
//! is drained on stop (its token cancelled, then waited for at most `DRAIN_TIMEOUT_MS`),
//! and one that ends while nothing asked it to, or fails, stops the Runner with an error
//! naming it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use e2e::{unique, wait_until};
use tokio::sync::Notify;
use worker_kit::rpc::RpcWorker;
use worker_kit::{CancellationToken, Error, Payload, Runner};

async fn answer(Payload(n): Payload<u32>) -> Result<u32, std::convert::Infallible> {
    Ok(n)
}

/// A Runner with one worker (so a task runs beside one) and `drain` as its drain timeout.
async fn runner(service: &'static str, drain: Duration) -> Runner {
    let mut config = e2e::config();
    config.drain_timeout = drain;
    Runner::new(service, Arc::new(config), e2e::broker(service).await)
        .register_worker(RpcWorker::new().route(&unique("task-neighbour"), answer))
}

/// Sets its flag when dropped: tells a task that was aborted from one that returned.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_task_runs_and_is_drained_on_stop() {
    let ticks = Arc::new(AtomicU32::new(0));
    let cleaned_up = Arc::new(AtomicBool::new(false));
    let (t, c) = (ticks.clone(), cleaned_up.clone());
    let running = runner("task-runs", Duration::from_secs(10))
        .await
        .register_task("ticker", move |stop: CancellationToken| async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(10)) => {
                        t.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            // Work after the token is cancelled is waited for.
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .start()
        .await
        .expect("starts");
    wait_until(Duration::from_secs(10), "the task ticks", || {
        let t = ticks.clone();
        async move { t.load(Ordering::SeqCst) >= 3 }
    })
    .await;
    assert!(!cleaned_up.load(Ordering::SeqCst));
    running.stop().await.expect("a drained task stops cleanly");
    assert!(
        cleaned_up.load(Ordering::SeqCst),
        "stop returned before the task finished"
    );
}

#[tokio::test]
async fn a_task_that_ignores_its_token_is_aborted_after_the_drain_timeout() {
    let aborted = Arc::new(AtomicBool::new(false));
    let a = aborted.clone();
    let drain = Duration::from_millis(300);
    let running = runner("task-stubborn", drain)
        .await
        .register_task("stubborn", move |_stop| async move {
            let _flag = SetOnDrop(a);
            std::future::pending::<()>().await;
            Ok::<_, Error>(())
        })
        .start()
        .await
        .expect("starts");
    let began = Instant::now();
    running.stop().await.expect("an aborted task is no error");
    assert!(aborted.load(Ordering::SeqCst), "the task was not dropped");
    assert!(
        began.elapsed() >= drain,
        "aborted before the drain timeout: {:?}",
        began.elapsed()
    );
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the stop waited {:?}",
        began.elapsed()
    );
}

/// Starts a Runner whose task `name` waits for `go`, then returns `result`; lets it go once
/// running and returns what supervising the Runner ended with.
async fn supervise_a_task_that_ends(name: &'static str, result: Result<(), String>) -> Error {
    let go = Arc::new(Notify::new());
    let g = go.clone();
    let running = runner("task-ends", Duration::from_secs(10))
        .await
        .register_task(name, move |_stop| async move {
            g.notified().await;
            result
        })
        .start()
        .await
        .expect("starts");
    let token = running.shutdown_token().clone();
    go.notify_one();
    let err = tokio::time::timeout(Duration::from_secs(20), running.supervise())
        .await
        .expect("the Runner stops when its task ends")
        .expect_err("a task that ends on its own is an error");
    assert!(token.is_cancelled(), "the workers were not stopped");
    err
}

#[tokio::test]
async fn a_task_that_ends_on_its_own_stops_the_runner_with_an_error_naming_it() {
    let err = supervise_a_task_that_ends("reporter", Ok(())).await;
    assert!(matches!(err, Error::WorkerEnded(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("task `reporter`") && text.contains("nothing asked it to"),
        "{text}"
    );
}

#[tokio::test]
async fn a_task_error_is_reported_with_its_name() {
    let err = supervise_a_task_that_ends("refresher", Err("cache source gone".into())).await;
    let text = err.to_string();
    assert!(
        text.contains("task `refresher` failed: cache source gone"),
        "{text}"
    );
}
