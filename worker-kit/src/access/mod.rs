//! Who is calling, and whether they may: the caller's identity as the broker vouches for
//! it, and per-route allow lists (docs/protocol.md, "Who is calling").
//!
//! RabbitMQ's permissions cannot tell one route from another: publishing any request
//! needs only `write` on the default exchange. What it does check is the AMQP `user_id`
//! property: a message whose `user_id` is not the user its connection logged in as is
//! refused. So the kit's publishers set it, servers read it as the caller, and a route may
//! admit only some callers.

mod allow;
mod caller;
pub(crate) mod pattern;

pub(crate) use allow::{AccessPolicy, RouteAccess};
pub use allow::{AllowList, Anonymous};
pub use caller::{Caller, ORIGINAL_USER_HEADER};
pub(crate) use caller::{original_user_header, resolve};
