//! The gate: every service's contracts at the base revision against the working tree's,
//! route by route and event by event.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::compat::{Schema, Side, compare};
use crate::document::{Contracts, Entry, Kind};

/// An incompatibility found by the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The service whose document changed.
    pub service: String,
    /// `route`, `task route`, `published event` or `subscribed event`.
    pub kind: &'static str,
    /// The route or event name.
    pub name: String,
    /// `request`, `reply`, `message`, `event`, or empty for the route or event itself.
    pub message: &'static str,
    /// The field path inside the message.
    pub path: String,
    /// The old and new shapes.
    pub old: String,
    pub new: String,
    /// The rule broken (a stable id).
    pub rule: String,
    /// What would go wrong during a rolling deploy, and what to do.
    pub why: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} `{}`", self.service, self.kind, self.name)?;
        if !self.message.is_empty() {
            write!(f, " {} at {}", self.message, self.path)?;
        }
        writeln!(f, ": {} [rule {}]", self.why, self.rule)?;
        writeln!(f, "    old: {}", self.old)?;
        write!(f, "    new: {}", self.new)
    }
}

/// Documents by service name.
pub type Documents = BTreeMap<String, Value>;

/// The way through a break that must happen.
fn versioning_hint(route: &str) -> String {
    format!(
        "serve the new shape under a new route (e.g. `{route}.v2`) beside the old one until every caller moved (README: Evolving a contract)"
    )
}

/// Compares `base` with `head` and returns every break, in service and name order.
///
/// # Errors
///
/// A document whose operations cannot be read.
pub fn check(base: &Documents, head: &Documents) -> Result<Vec<Break>, String> {
    let mut breaks = Vec::new();
    let empty = Value::Null;
    for (service, old_doc) in base {
        let new_doc = head.get(service).unwrap_or(&empty);
        let old = Contracts::of(old_doc).map_err(|e| format!("{service} (base): {e}"))?;
        let new = Contracts::of(new_doc).map_err(|e| format!("{service} (working tree): {e}"))?;
        for (name, entry) in &old.routes {
            match new.routes.get(name) {
                Some(now) => compare_entry(&mut breaks, service, name, (&old, entry), (&new, now)),
                None if new.retired.contains(name) => {}
                None => breaks.push(Break {
                    service: service.clone(),
                    kind: entry.kind.label(),
                    name: name.clone(),
                    message: "",
                    path: String::new(),
                    old: "served".to_owned(),
                    new: "absent".to_owned(),
                    rule: "removed-route".to_owned(),
                    why: format!("old callers still send to its queue; keep serving it until none does, then mark it retired (Document::retired(\"{name}\", why))"),
                }),
            }
        }
        for ((kind, name), entry) in &old.events {
            match new.events.get(&(*kind, name.clone())) {
                Some(now) => compare_entry(&mut breaks, service, name, (&old, entry), (&new, now)),
                // A subscriber that stops listening breaks nobody.
                None if *kind == Kind::Subscribes || new.retired.contains(name) => {}
                None => breaks.push(Break {
                    service: service.clone(),
                    kind: kind.label(),
                    name: name.clone(),
                    message: "",
                    path: String::new(),
                    old: "published".to_owned(),
                    new: "absent".to_owned(),
                    rule: "removed-event".to_owned(),
                    why: format!("subscribers still wait for it; keep publishing it until none does, then mark it retired (Document::retired(\"{name}\", why))"),
                }),
            }
        }
    }
    breaks.extend(subscribers_read_publishers(head)?);
    Ok(breaks)
}

fn compare_entry(
    breaks: &mut Vec<Break>,
    service: &str,
    name: &str,
    (old_doc, old): (&Contracts<'_>, &Entry<'_>),
    (new_doc, new): (&Contracts<'_>, &Entry<'_>),
) {
    if old.kind != new.kind {
        breaks.push(Break {
            service: service.to_owned(),
            kind: old.kind.label(),
            name: name.to_owned(),
            message: "",
            path: String::new(),
            old: old.kind.label().to_owned(),
            new: new.kind.label().to_owned(),
            rule: "changed-kind".to_owned(),
            why: format!(
                "old callers expect a {}; {}",
                old.kind.label(),
                versioning_hint(name)
            ),
        });
        return;
    }
    let (input_label, input_side) = match old.kind {
        Kind::Rpc => ("request", Side::Read),
        Kind::Task => ("message", Side::Read),
        Kind::Publishes => ("event", Side::Written),
        Kind::Subscribes => ("event", Side::Read),
    };
    let mut found = vec![(
        input_label,
        compare(
            Schema {
                doc: old_doc.doc,
                schema: old.input,
            },
            Schema {
                doc: new_doc.doc,
                schema: new.input,
            },
            input_side,
        ),
    )];
    if let (Some(o), Some(n)) = (old.reply, new.reply) {
        found.push((
            "reply",
            compare(
                Schema {
                    doc: old_doc.doc,
                    schema: o,
                },
                Schema {
                    doc: new_doc.doc,
                    schema: n,
                },
                Side::Written,
            ),
        ));
    }
    for (message, findings) in found {
        for f in findings {
            breaks.push(Break {
                service: service.to_owned(),
                kind: old.kind.label(),
                name: name.to_owned(),
                message,
                path: f.path,
                old: f.old,
                new: f.new,
                rule: format!("{message}.{}", f.rule),
                why: if old.kind.is_event() {
                    f.why
                } else {
                    format!("{}; {}", f.why, versioning_hint(name))
                },
            });
        }
    }
}

/// In the working tree, every subscriber must read what the publisher of the event
/// writes (both normally use the same type from `stubs`; this catches one that does not).
fn subscribers_read_publishers(head: &Documents) -> Result<Vec<Break>, String> {
    let mut contracts = Vec::new();
    for (service, doc) in head {
        contracts.push((
            service,
            Contracts::of(doc).map_err(|e| format!("{service}: {e}"))?,
        ));
    }
    let mut breaks = Vec::new();
    for (publisher, p) in &contracts {
        for ((kind, name), published) in &p.events {
            if *kind != Kind::Publishes {
                continue;
            }
            for (subscriber, s) in &contracts {
                let Some(subscribed) = s.events.get(&(Kind::Subscribes, name.clone())) else {
                    continue;
                };
                // The subscriber's schema is what reads; the publisher's what is written.
                let findings = compare(
                    Schema {
                        doc: s.doc,
                        schema: subscribed.input,
                    },
                    Schema {
                        doc: p.doc,
                        schema: published.input,
                    },
                    Side::Written,
                );
                for f in findings {
                    breaks.push(Break {
                        service: (*subscriber).clone(),
                        kind: Kind::Subscribes.label(),
                        name: name.clone(),
                        message: "event",
                        path: f.path,
                        old: format!("{subscriber} reads {}", f.old),
                        new: format!("{publisher} publishes {}", f.new),
                        rule: format!("subscriber.{}", f.rule),
                        why: format!(
                            "{subscriber} cannot read what {publisher} publishes: {}",
                            f.why
                        ),
                    });
                }
            }
        }
    }
    Ok(breaks)
}
