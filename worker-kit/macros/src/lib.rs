//! Macros for worker-kit: the route attributes `#[rpc(...)]` and `#[task(...)]`, the row
//! derives `Record`, `FromRow`, `Insert`, `Changes`, and `#[queries("file.sql")]`.
//!
//! The route attributes turn an `async fn` handler into a unit struct of the same name
//! (`#[derive(Clone, Copy, Debug)]`, the function's docs kept) with `const ROUTE` and the
//! function as the associated `name::handler(...)` (callable from unit tests), and
//! implement `RpcRoute` / `TaskRoute` for it, so that a worker's `.register(name)` makes
//! the builder call: `worker.route(ROUTE, handler)` for `#[rpc("route")]`;
//! `worker.contract::<Type, _, _, _>(handler)` (`worker.task::<Type, _, _, _>(handler)`
//! for `#[task]`) for `contract = Type`, which checks the payload and answer types at
//! compile time; then `.allow(ROUTE, [...])` when `allow = [...]` is given. Nothing else
//! is generated.
//!
//! Use these through `worker_kit` (`worker_kit::{rpc, task}`, `worker_kit::db::{...}`).

use proc_macro::TokenStream;

mod queries;
mod record;
mod route;

/// Declares an RPC route.
///
/// `#[rpc("route_name")]` answers that route; `#[rpc(contract = path::Type)]` answers the
/// contract's route and checks at compile time that the handler takes `Payload<Type>`
/// and returns `Result<Type::Response, _>`. Either may be followed by an allow list,
/// `#[rpc(contract = path::Type, allow = ["greeter", "billing-*"])]`: the broker users
/// admitted to the route (`RpcWorker::allow`).
#[proc_macro_attribute]
pub fn rpc(attr: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(route::Kind::Rpc, attr.into(), item.into()).into()
}

/// Declares a work-queue route: `#[task("route_name")]` or
/// `#[task(contract = path::Type)]` (a `TaskContract`), optionally followed by
/// `allow = ["caller", ...]` (`QueueWorker::allow`).
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(route::Kind::Task, attr.into(), item.into()).into()
}

/// A table's row: `#[record(table = "items")]` (and `id = "column"` when the id column is
/// not `id`); fields map to columns by name, `#[record(rename = "col")]` otherwise.
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    record::expand(record::Which::Record, input.into()).into()
}

/// Any query's row: fields read by column name.
#[proc_macro_derive(FromRow, attributes(record))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    record::expand(record::Which::FromRow, input.into()).into()
}

/// A new row: every field is a column to set.
#[proc_macro_derive(Insert, attributes(record))]
pub fn derive_insert(input: TokenStream) -> TokenStream {
    record::expand(record::Which::Insert, input.into()).into()
}

/// A partial update: every field is an `Option`; `Some` fields are set.
#[proc_macro_derive(Changes, attributes(record))]
pub fn derive_changes(input: TokenStream) -> TokenStream {
    record::expand(record::Which::Changes, input.into()).into()
}

/// Typed methods for the named queries of an SQL file (path relative to the crate); see
/// `worker_kit::db`.
#[proc_macro_attribute]
pub fn queries(attr: TokenStream, item: TokenStream) -> TokenStream {
    queries::expand(attr.into(), item.into()).into()
}
