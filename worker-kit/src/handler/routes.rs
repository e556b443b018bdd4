//! Route tables shared by the RPC and work-queue workers, and the traits the route macros
//! implement.

use std::collections::HashSet;
use std::sync::Arc;

use crate::access::{AccessPolicy, AllowList, Caller, RouteAccess};
use crate::handler::extract::Incoming;
use crate::handler::{BoxFuture, BoxedHandler, Outcome};
use crate::wire::reply_error::ErrorReply;

/// Makes the JSON Schema of one type, its definitions kept in the generator.
pub(crate) type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// What a route says about itself for the AsyncAPI document, recorded at registration:
/// the schemas of its contract's types, or nothing for a route registered by name (its
/// payload is then any JSON).
#[derive(Clone, Copy, Default)]
pub(crate) struct RouteDoc {
    pub(crate) request: Option<SchemaFn>,
    pub(crate) response: Option<SchemaFn>,
    /// The request type's name, for the message's title.
    pub(crate) request_name: Option<&'static str>,
}

impl RouteDoc {
    pub(crate) fn contract<C: crate::Contract>() -> Self {
        Self {
            request: Some(|g| g.subschema_for::<C>()),
            response: Some(|g| g.subschema_for::<C::Response>()),
            request_name: Some(short_type_name::<C>()),
        }
    }

    pub(crate) fn task<T: crate::TaskContract>() -> Self {
        Self {
            request: Some(|g| g.subschema_for::<T>()),
            response: None,
            request_name: Some(short_type_name::<T>()),
        }
    }
}

/// `stubs::example::items::GetItem` → `GetItem`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Routes of one worker, in registration order. Duplicate names are remembered and
/// refused when the worker starts, so every mistake is reported together.
pub(crate) struct RouteTable<S> {
    entries: Vec<(String, BoxedHandler<S>, RouteDoc)>,
    duplicates: Vec<String>,
    /// Allow lists by route, as registered (`ROUTE_ALLOW` may replace them at run time).
    allow: Vec<(String, AllowList)>,
}

impl<S> Default for RouteTable<S> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            duplicates: Vec::new(),
            allow: Vec::new(),
        }
    }
}

/// A route with the worker's state bound: what the consume loop calls per message, and
/// whom it admits, which is checked before the message's body is decoded (a caller the
/// route refuses costs no gunzip, no parse and no memory).
#[derive(Clone)]
pub(crate) struct BoundHandler {
    gate: Gate,
    run: Arc<dyn Fn(Incoming) -> BoxFuture<Outcome> + Send + Sync>,
}

/// Who a [`BoundHandler`] admits.
#[derive(Clone)]
enum Gate {
    /// Every message (no check runs at all).
    Open,
    /// The callers the route's access admits.
    Access(Arc<RouteAccess>),
    /// Nobody: every message is refused with this error (an event from a publisher the
    /// subscription does not admit).
    Refused(ErrorReply),
}

impl BoundHandler {
    /// `run`, admitting every message.
    pub(crate) fn new(
        run: impl Fn(Incoming) -> BoxFuture<Outcome> + Send + Sync + 'static,
    ) -> Self {
        Self {
            gate: Gate::Open,
            run: Arc::new(run),
        }
    }

    /// This handler refusing every message with `e`.
    pub(crate) fn refusing(self, e: ErrorReply) -> Self {
        Self {
            gate: Gate::Refused(e),
            run: self.run,
        }
    }

    /// `Ok` when the route admits a message from `caller`, else the error it is refused
    /// with. Checked before the body is decoded.
    pub(crate) fn admit(&self, caller: &Caller) -> Result<(), ErrorReply> {
        match &self.gate {
            Gate::Open => Ok(()),
            Gate::Access(access) => access.check(caller),
            Gate::Refused(e) => Err(e.clone()),
        }
    }

    /// The handler's future for an admitted message (its extractors run here).
    pub(crate) fn run(&self, msg: Incoming) -> BoxFuture<Outcome> {
        (self.run)(msg)
    }
}

impl<S: Clone + Send + Sync + 'static> RouteTable<S> {
    pub(crate) fn add(&mut self, name: &str, handler: BoxedHandler<S>, doc: RouteDoc) {
        if self.entries.iter().any(|(n, _, _)| n == name) {
            self.duplicates.push(name.to_owned());
        } else {
            self.entries.push((name.to_owned(), handler, doc));
        }
    }

    /// Each route's name and documentation, in registration order.
    pub(crate) fn docs(&self) -> Vec<(String, RouteDoc)> {
        self.entries
            .iter()
            .map(|(n, _, d)| (n.clone(), *d))
            .collect()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(n, _, _)| n.clone())
            .chain(self.duplicates.iter().cloned())
            .collect()
    }

    pub(crate) fn duplicates(&self) -> &[String] {
        &self.duplicates
    }

    /// Sets `route`'s allow list (the last one set wins).
    pub(crate) fn allow(&mut self, route: &str, list: AllowList) {
        self.allow.retain(|(r, _)| r != route);
        self.allow.push((route.to_owned(), list));
    }

    /// A route that was given an allow list but is not served: a typo that would leave
    /// the intended route open.
    pub(crate) fn allow_without_route(&self) -> Option<&str> {
        self.allow
            .iter()
            .map(|(r, _)| r.as_str())
            .find(|r| !self.entries.iter().any(|(n, _, _)| n == r))
    }

    /// The same routes with `state` given to every handler: what each needs is then
    /// nothing more (`RouteTable<()>`).
    pub(crate) fn with_state(self, state: S) -> RouteTable<()> {
        RouteTable {
            entries: self
                .entries
                .into_iter()
                .map(|(name, h, doc)| {
                    let state = state.clone();
                    let bound: BoxedHandler<()> = Arc::new(move |msg, ()| h(msg, state.clone()));
                    (name, bound, doc)
                })
                .collect(),
            duplicates: self.duplicates,
            allow: self.allow,
        }
    }
}

impl RouteTable<()> {
    /// The handlers as the consume loop calls them, with the route's access check when
    /// `policy` gives it one (a route that admits every message pays nothing).
    pub(crate) fn bind(self, policy: &AccessPolicy) -> Vec<(Arc<str>, BoundHandler)> {
        let allow = self.allow;
        self.entries
            .into_iter()
            .map(|(name, h, _)| {
                let registered = allow.iter().find(|(r, _)| *r == name).map(|(_, l)| l);
                let mut bound = BoundHandler::new(move |msg| h(msg, ()));
                if let Some(access) = policy.for_route(&name, registered) {
                    bound.gate = Gate::Access(Arc::new(access));
                }
                (Arc::from(name.as_str()), bound)
            })
            .collect()
    }
}

/// Names that appear more than once across `names`, each reported once.
pub(crate) fn find_duplicates<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut dups = Vec::new();
    for n in names {
        if !seen.insert(n.as_str()) && !dups.contains(n) {
            dups.push(n.clone());
        }
    }
    dups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_found_once() {
        let names: Vec<String> = ["a", "b", "a", "c", "a", "b"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            find_duplicates(&names),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}
