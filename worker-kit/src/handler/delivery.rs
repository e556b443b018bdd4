//! A delivery as its handler sees it ([`Meta`]): what the wire says (deadline, retry
//! count, properties) together with who the caller is, which access decides. Built here,
//! where both are known, so that neither wire nor access needs the other's view.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lapin::message::Delivery;

use crate::handler::extract::Meta;
use crate::wire::deadline::{self, Deadline};
use crate::wire::delivery::{RETRY_COUNT_HEADER, deadline_header, header_u64};

/// The request's [`Meta`], its deadline read with the server's clock at `now`
/// ([`deadline::bounded_budget`]: never more than `max_budget`, the handler's limit), its
/// caller as seen by a process logged in as `own_user`.
pub(crate) fn meta(
    delivery: &Delivery,
    route: &Arc<str>,
    max_budget: Duration,
    own_user: &str,
) -> Meta {
    meta_at(
        delivery,
        route,
        SystemTime::now(),
        deadline::DEFAULT_MAX_SKEW,
        max_budget,
        own_user,
    )
}

/// [`meta`] with the clock and the allowed skew given.
pub(crate) fn meta_at(
    delivery: &Delivery,
    route: &Arc<str>,
    now: SystemTime,
    max_skew: Duration,
    max_budget: Duration,
    own_user: &str,
) -> Meta {
    let p = &delivery.properties;
    let headers = p.headers().clone().unwrap_or_default();
    let budget = deadline::bounded_budget(
        deadline_header(Some(&headers)),
        header_u64(Some(&headers), deadline::TIMEOUT_HEADER).map(Duration::from_millis),
        now,
        max_skew,
        max_budget,
    );
    Meta {
        route: route.clone(),
        correlation_id: p.correlation_id().as_ref().map(|s| s.as_str().to_owned()),
        reply_to: p.reply_to().as_ref().map(|s| s.as_str().to_owned()),
        redelivered: delivery.redelivered,
        retry_count: header_u64(Some(&headers), RETRY_COUNT_HEADER)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        deadline: budget.map(|b| Deadline::at(now + b)),
        message_id: p.message_id().as_ref().map(|s| s.as_str().to_owned()),
        message_type: p.kind().as_ref().map(|s| s.as_str().to_owned()),
        timestamp: *p.timestamp(),
        caller: crate::access::resolve(
            p.user_id().as_ref().map(lapin::types::ShortString::as_str),
            &headers,
            own_user,
        ),
        headers,
    }
}
