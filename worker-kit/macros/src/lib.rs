//! Route macros for worker-kit: `#[rpc(...)]` and `#[task(...)]`.
//!
//! Each turns an `async fn` handler into a unit struct of the same name that a worker
//! registers with `.register(name)`. The expansion is the builder call
//! (`worker.route(ROUTE, handler)`) and nothing else; the function itself stays callable
//! as `name::handler(...)`, e.g. from unit tests.
//!
//! Use these through `worker_kit::{rpc, task}`.

use proc_macro::TokenStream;

mod route;

/// Declares an RPC route.
///
/// `#[rpc("route_name")]` answers that route; `#[rpc(contract = path::Type)]` answers the
/// contract's route and checks at compile time that the handler takes `Payload<Type>`
/// and returns `Result<Type::Response, _>`.
#[proc_macro_attribute]
pub fn rpc(attr: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(route::Kind::Rpc, attr.into(), item.into()).into()
}

/// Declares a work-queue route: `#[task("route_name")]` or
/// `#[task(contract = path::Type)]` (a `TaskContract`).
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(route::Kind::Task, attr.into(), item.into()).into()
}
