//! The error type a delivery's handling ended with, carried from where the error is logged
//! (deep in the RPC answer or the work-queue decision) to where the delivery is counted,
//! without threading it through every return type: a task-local set around each delivery.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static ERROR_TYPE: RefCell<Option<Cow<'static, str>>>;
}

/// Runs `work` and returns its output with the last error type [`note`]d inside it.
pub(crate) async fn capture<F: Future>(work: F) -> (F::Output, Option<Cow<'static, str>>) {
    ERROR_TYPE
        .scope(RefCell::new(None), async move {
            let out = work.await;
            let noted = ERROR_TYPE.with(RefCell::take);
            (out, noted)
        })
        .await
}

/// Records `error_type` for the delivery being handled (nothing outside [`capture`]).
// A `Cow`, not a `&str`: cloning it keeps the kit's `'static` names unallocated.
#[allow(clippy::ptr_arg)]
pub(crate) fn note(error_type: &Cow<'static, str>) {
    let _ = ERROR_TYPE.try_with(|c| *c.borrow_mut() = Some(error_type.clone()));
}
