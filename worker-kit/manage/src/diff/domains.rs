//! Domains: created, altered constraint by constraint, dropped. A CHECK added to an
//! existing domain is added `NOT VALID` (no scan: only new values are checked) and
//! validated in a later step of its own. Before PostgreSQL 19 the validation still holds
//! SHARE on every table using the domain while it scans them (writes wait): it is tagged
//! `lock`; from 19 on it takes SHARE UPDATE EXCLUSIVE and writes go on.

use super::{Phases, domain_create, step};
use crate::catalog::Catalog;
use crate::plan::{Hazard, Step};

/// The first `server_version_num` whose `ALTER DOMAIN ... VALIDATE CONSTRAINT` takes SHARE
/// UPDATE EXCLUSIVE on the tables using the domain instead of SHARE.
const VALIDATE_LETS_WRITES_GO_ON: i32 = 190_000;

/// A table with a column of domain `name` (or an array of it), whose lock a validation
/// takes: the step runs in a transaction of its own.
fn using_domain(from: &Catalog, name: &str) -> Option<String> {
    from.tables
        .iter()
        .find(|(_, t)| {
            t.columns
                .iter()
                .any(|c| super::base_type(&c.data_type) == name)
        })
        .map(|(n, _)| n.clone())
}

pub(super) fn diff(from: &Catalog, to: &Catalog, p: &mut Phases) {
    for (name, d) in &to.domains {
        match from.domains.get(name) {
            None => p.object(format!("domain {name}"), step(domain_create(name, d), None)),
            Some(old) if old == d => {}
            Some(old) if old.base != d.base => p.unsupported.push(format!(
                "domain {name} changed its base type from {} to {}",
                old.base, d.base
            )),
            Some(old) => {
                let key = format!("domain {name}");
                if old.default != d.default {
                    p.object(
                        key.clone(),
                        step(
                            match &d.default {
                                Some(def) => format!("ALTER DOMAIN {name} SET DEFAULT {def}"),
                                None => format!("ALTER DOMAIN {name} DROP DEFAULT"),
                            },
                            None,
                        ),
                    );
                }
                if old.not_null != d.not_null {
                    let verb = if d.not_null { "SET" } else { "DROP" };
                    p.object(
                        key.clone(),
                        step(
                            format!("ALTER DOMAIN {name} {verb} NOT NULL"),
                            d.not_null.then_some(Hazard::Lock),
                        ),
                    );
                }
                // A check left NOT VALID (an interrupted migration) is validated, not re-made.
                let only_unvalidated = |cname: &String| {
                    old.checks
                        .get(cname)
                        .and_then(|c| c.strip_suffix(" NOT VALID"))
                        .is_some_and(|c| d.checks.get(cname).map(String::as_str) == Some(c))
                };
                for (cname, check) in &old.checks {
                    if d.checks.get(cname) != Some(check) && !only_unvalidated(cname) {
                        p.object(
                            key.clone(),
                            step(format!("ALTER DOMAIN {name} DROP CONSTRAINT {cname}"), None),
                        );
                    }
                }
                let validate = |cname: &str| Step {
                    locks: using_domain(from, name),
                    ..step(
                        format!("ALTER DOMAIN {name} VALIDATE CONSTRAINT {cname}"),
                        (from.server_version < VALIDATE_LETS_WRITES_GO_ON).then_some(Hazard::Lock),
                    )
                };
                for (cname, check) in &d.checks {
                    if only_unvalidated(cname) {
                        p.validate.push(validate(cname));
                    } else if old.checks.get(cname) != Some(check)
                        && p.online
                        && !check.ends_with(" NOT VALID")
                    {
                        p.object(
                            key.clone(),
                            step(
                                format!(
                                    "ALTER DOMAIN {name} ADD CONSTRAINT {cname} {check} NOT VALID"
                                ),
                                None,
                            ),
                        );
                        p.validate.push(validate(cname));
                    } else if old.checks.get(cname) != Some(check) {
                        p.object(
                            key.clone(),
                            step(
                                format!("ALTER DOMAIN {name} ADD CONSTRAINT {cname} {check}"),
                                Some(Hazard::Lock),
                            ),
                        );
                    }
                }
            }
        }
    }

    for (name, _) in from
        .domains
        .iter()
        .filter(|(n, _)| !to.domains.contains_key(*n))
    {
        p.drop_last(
            Some(format!("domain {name}")),
            step(format!("DROP DOMAIN {name}"), Some(Hazard::Drop)),
        );
    }
}
