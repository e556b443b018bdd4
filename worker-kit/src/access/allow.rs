//! Per-route allow lists and the treatment of anonymous messages: what a route admits,
//! from its registration (`#[rpc(..., allow = [...])]`, `Worker::allow`), overridden per
//! deployment by `ROUTE_ALLOW`, with `RPC_ANONYMOUS` for routes without a list.

use std::sync::Arc;

use super::caller::Caller;
use super::pattern::glob;
use crate::config::Config;
pub use crate::config::{AllowList, Anonymous};
use crate::wire::reply_error::ErrorReply;

/// What the list means: the patterns matched against a broker user.
impl AllowList {
    /// Whether broker user `user` is on the list.
    pub fn admits(&self, user: &str) -> bool {
        self.patterns().iter().any(|p| glob(p, user))
    }
}

/// A process's access settings: `RPC_ANONYMOUS` and the `ROUTE_ALLOW` overrides.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessPolicy {
    anonymous: Anonymous,
    overrides: Vec<(String, AllowList)>,
}

impl AccessPolicy {
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            anonymous: config.rpc_anonymous,
            overrides: config.route_allow.clone(),
        }
    }

    /// What `route` admits, given the list it was registered with; `None` when it admits
    /// every message (then no check runs at all).
    pub(crate) fn for_route(
        &self,
        route: &str,
        registered: Option<&AllowList>,
    ) -> Option<RouteAccess> {
        let list = self
            .overrides
            .iter()
            .find(|(r, _)| r == route)
            .map(|(_, l)| l)
            .or(registered)
            .cloned();
        if list.is_none() && self.anonymous == Anonymous::Allow {
            return None;
        }
        Some(RouteAccess {
            route: Arc::from(route),
            list,
            anonymous: self.anonymous,
        })
    }
}

/// What one route admits: checked before its handler runs.
#[derive(Debug, Clone)]
pub(crate) struct RouteAccess {
    route: Arc<str>,
    list: Option<AllowList>,
    anonymous: Anonymous,
}

impl RouteAccess {
    /// `Ok` when `caller` may call the route, else the `Forbidden` error it gets.
    pub(crate) fn check(&self, caller: &Caller) -> Result<(), ErrorReply> {
        let route = &self.route;
        match (&self.list, caller.verified_user()) {
            (Some(list), Some(user)) if list.admits(user) => Ok(()),
            (Some(_), Some(user)) => Err(ErrorReply::forbidden(format!(
                "caller {user} is not on the allow list of route {route}"
            ))),
            (Some(_), None) => Err(ErrorReply::forbidden(format!(
                "route {route} admits only the callers on its allow list, and this message carries no user_id"
            ))),
            (None, Some(_)) => Ok(()),
            (None, None) if self.anonymous == Anonymous::Allow => Ok(()),
            (None, None) => Err(ErrorReply::forbidden(format!(
                "route {route} refuses messages without user_id (RPC_ANONYMOUS=deny)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(anonymous: Anonymous, overrides: &[(&str, &[&str])]) -> AccessPolicy {
        AccessPolicy {
            anonymous,
            overrides: overrides
                .iter()
                .map(|(r, l)| ((*r).to_owned(), AllowList::new(l.iter().copied())))
                .collect(),
        }
    }

    fn forbidden(access: &RouteAccess, caller: &Caller) -> String {
        let e = access.check(caller).unwrap_err();
        assert_eq!(e.error_type, "Forbidden");
        e.message
    }

    #[test]
    fn an_open_route_under_the_default_is_not_checked_at_all() {
        assert!(policy(Anonymous::Allow, &[]).for_route("r", None).is_none());
    }

    #[test]
    fn a_list_admits_its_callers_only() {
        let list = AllowList::new(["greeter", "billing-*"]);
        let access = policy(Anonymous::Allow, &[])
            .for_route("r", Some(&list))
            .unwrap();
        assert!(access.check(&Caller::verified("greeter")).is_ok());
        assert!(access.check(&Caller::verified("billing-eu")).is_ok());
        assert_eq!(
            forbidden(&access, &Caller::verified("catalog")),
            "caller catalog is not on the allow list of route r"
        );
        assert!(forbidden(&access, &Caller::anonymous()).contains("carries no user_id"));
        assert!(forbidden(&access, &Caller::claimed("greeter")).contains("no user_id"));
    }

    #[test]
    fn anonymous_is_decided_by_the_setting_on_routes_without_a_list() {
        let access = policy(Anonymous::Deny, &[]).for_route("r", None).unwrap();
        assert!(access.check(&Caller::verified("anyone")).is_ok());
        assert_eq!(
            forbidden(&access, &Caller::anonymous()),
            "route r refuses messages without user_id (RPC_ANONYMOUS=deny)"
        );
    }

    #[test]
    fn the_deployment_overrides_the_registered_list() {
        let registered = AllowList::new(["greeter"]);
        let p = policy(Anonymous::Allow, &[("r", &["ops"]), ("closed", &[])]);
        let access = p.for_route("r", Some(&registered)).unwrap();
        assert!(access.check(&Caller::verified("ops")).is_ok());
        assert!(access.check(&Caller::verified("greeter")).is_err());
        let closed = p.for_route("closed", None).unwrap();
        assert!(closed.check(&Caller::verified("ops")).is_err());
        assert!(p.for_route("other", None).is_none());
    }
}
