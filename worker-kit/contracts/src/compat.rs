//! The compatibility rules: does a schema change keep the other side of a rolling deploy
//! working?
//!
//! Which side matters depends on who reads the message:
//!
//! - **read** by the service (a request, a work-queue message, an event it subscribes to):
//!   old callers keep sending what the old schema allowed, so the new schema must accept
//!   all of it — no new required field, no field made required, no removed field (old
//!   callers still send it and the new server would drop it), no narrowed type, range,
//!   format or set of values, no object closed to unknown fields — and new callers must
//!   not send old servers fields they refuse (an added field in a closed object);
//! - **written** by the service (a reply, an event it publishes): old callers and
//!   subscribers keep reading with the old schema, so everything the new one allows must
//!   fit the old one — no removed or renamed field, no field made optional, no changed or
//!   widened type or range, no new value of an enum, no field added to a closed object.
//!
//! Additions that both sides tolerate (an optional request field, a reply field, a wider
//! request type) pass.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::shape::Shape;

/// Who reads the message whose schema changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The service reads it; others (old and new) write it.
    Read,
    /// The service writes it; others (old and new) read it.
    Written,
}

/// One incompatibility inside a message schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Where, from the message's root: `price_cents`, `items[].tags`, `(value)`.
    pub path: String,
    /// The old and new shapes there.
    pub old: String,
    pub new: String,
    /// The rule broken, a stable id: `new-required-field`, `removed-field`, …
    pub rule: &'static str,
    /// What goes wrong at run time.
    pub why: String,
}

/// A schema on one side, with the document its `$ref`s resolve in.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    pub doc: &'a Value,
    pub schema: &'a Value,
}

impl<'a> Schema<'a> {
    fn at(self, schema: &'a Value) -> Self {
        Self {
            doc: self.doc,
            schema,
        }
    }

    fn shape(self) -> Shape<'a> {
        Shape::of(self.doc, self.schema)
    }
}

/// The incompatibilities between `old` and `new`, as seen by `side`.
pub fn compare(old: Schema<'_>, new: Schema<'_>, side: Side) -> Vec<Finding> {
    let mut walk = Walk {
        side,
        findings: Vec::new(),
        seen: BTreeSet::new(),
    };
    walk.compare(old, new, "");
    walk.findings
}

struct Walk {
    side: Side,
    findings: Vec<Finding>,
    /// Schema pairs already compared (by address): recursive types end here.
    seen: BTreeSet<(usize, usize)>,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn shown(path: &str) -> String {
    if path.is_empty() {
        "(the whole payload)".to_owned()
    } else {
        path.to_owned()
    }
}

impl Walk {
    fn report(&mut self, path: &str, old: String, new: String, rule: &'static str, why: String) {
        self.findings.push(Finding {
            path: shown(path),
            old,
            new,
            rule,
            why,
        });
    }

    /// Whether `old` → `new` has no finding, without recording any.
    fn fits(&self, old: Schema<'_>, new: Schema<'_>) -> bool {
        let mut trial = Walk {
            side: self.side,
            findings: Vec::new(),
            seen: self.seen.clone(),
        };
        trial.compare(old, new, "");
        trial.findings.is_empty()
    }

    fn compare(&mut self, old: Schema<'_>, new: Schema<'_>, path: &str) {
        let key = (
            std::ptr::from_ref(old.schema) as usize,
            std::ptr::from_ref(new.schema) as usize,
        );
        if !self.seen.insert(key) {
            return;
        }
        let (o, n) = (old.shape(), new.shape());
        // The side whose values must fit, and the side they must fit into.
        let (from, into) = match self.side {
            Side::Read => (&o, &n),
            Side::Written => (&n, &o),
        };
        if into.any {
            return;
        }
        if from.any {
            let (rule, why) = match self.side {
                Side::Read => (
                    "narrowed-type",
                    "any JSON was accepted: old callers' values may not fit".to_owned(),
                ),
                Side::Written => (
                    "changed-type",
                    "old readers expect the old type, and any JSON may now come".to_owned(),
                ),
            };
            self.report(path, o.to_string(), n.to_string(), rule, why);
            return;
        }
        if o.is_union() || n.is_union() {
            self.compare_unions(old, new, &o, &n, path);
            return;
        }
        let missing: Vec<&str> = from
            .types
            .iter()
            .copied()
            .filter(|t| !into.admits_type(t))
            .collect();
        if !missing.is_empty() {
            let (rule, why) = match (self.side, missing.as_slice()) {
                (Side::Read, ["null"]) => (
                    "null-refused",
                    "old callers may send null here; the new schema refuses it".to_owned(),
                ),
                (Side::Read, _) => (
                    "narrowed-type",
                    format!(
                        "old callers may send {}; the new schema refuses it",
                        missing.join(" or ")
                    ),
                ),
                (Side::Written, ["null"]) => (
                    "may-be-null",
                    "the value may now be null; old readers expect a value".to_owned(),
                ),
                (Side::Written, _) => (
                    "changed-type",
                    format!(
                        "the value may now be {}; old readers cannot read it",
                        missing.join(" or ")
                    ),
                ),
            };
            self.report(path, o.to_string(), n.to_string(), rule, why);
            return;
        }
        self.compare_values(&o, &n, path);
        self.compare_bounds(&o, &n, path);
        if o.types.contains("object") || n.types.contains("object") {
            self.compare_objects(old, new, &o, &n, path);
        }
        if let (Some(oi), Some(ni)) = (o.items, n.items) {
            self.compare(old.at(oi), new.at(ni), &format!("{path}[]"));
        }
    }

    /// `enum`/`const`: the values that must fit.
    fn compare_values(&mut self, o: &Shape<'_>, n: &Shape<'_>, path: &str) {
        let (from, into) = match self.side {
            Side::Read => (o, n),
            Side::Written => (n, o),
        };
        let Some(allowed) = &into.values else { return };
        let (rule, why) = match (&from.values, self.side) {
            (None, Side::Read) => (
                "narrowed-values",
                "now restricted to a set of values; old callers may send others".to_owned(),
            ),
            (None, Side::Written) => (
                "added-enum-value",
                "no longer restricted to the old values; old readers know only those".to_owned(),
            ),
            (Some(values), side) => {
                let extra: Vec<String> = values
                    .iter()
                    .filter(|v| !allowed.contains(v))
                    .map(Value::to_string)
                    .collect();
                if extra.is_empty() {
                    return;
                }
                match side {
                    Side::Read => (
                        "removed-enum-value",
                        format!("old callers may still send {}", extra.join(", ")),
                    ),
                    Side::Written => (
                        "added-enum-value",
                        format!("old readers do not know {}", extra.join(", ")),
                    ),
                }
            }
        };
        self.report(path, o.to_string(), n.to_string(), rule, why);
    }

    /// Numeric ranges, string formats, lengths and patterns, array lengths.
    fn compare_bounds(&mut self, o: &Shape<'_>, n: &Shape<'_>, path: &str) {
        let (from, into) = match self.side {
            Side::Read => (o, n),
            Side::Written => (n, o),
        };
        let below = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => a < b,
        };
        let above = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => a > b,
        };
        let numeric = from.types.contains("integer") || from.types.contains("number");
        let len = |v: Option<u64>| v.map(|v| v as f64);
        let out_of_range = numeric && (below(from.min, into.min) || above(from.max, into.max));
        let out_of_length = below(len(from.min_length), len(into.min_length))
            || above(len(from.max_length), len(into.max_length))
            || below(len(from.min_items), len(into.min_items))
            || above(len(from.max_items), len(into.max_items));
        let format_differs = into.format.is_some() && into.format != from.format;
        let pattern_differs = into.pattern.is_some() && into.pattern != from.pattern;
        if !(out_of_range || out_of_length || format_differs || pattern_differs) {
            return;
        }
        let what = if out_of_range {
            "range"
        } else if out_of_length {
            "length"
        } else if format_differs {
            "format"
        } else {
            "pattern"
        };
        let (rule, why) = match self.side {
            Side::Read => (
                "narrowed-range",
                format!("the {what} is narrower: old callers' values may fall outside it"),
            ),
            Side::Written => (
                "widened-range",
                format!("the {what} is wider: old readers may not hold the new values"),
            ),
        };
        let old = format!("{o}{}", detail(o));
        let new = format!("{n}{}", detail(n));
        self.report(path, old, new, rule, why);
    }

    fn compare_objects(
        &mut self,
        old: Schema<'_>,
        new: Schema<'_>,
        o: &Shape<'_>,
        n: &Shape<'_>,
        path: &str,
    ) {
        for (field, old_field) in &o.properties {
            let at = join(path, field);
            let Some(new_field) = n.properties.get(field) else {
                let old_shape = Shape::of(old.doc, old_field).to_string();
                let why = match self.side {
                    Side::Read => {
                        "old callers still send it and the new server drops it (or refuses it)"
                            .to_owned()
                    }
                    Side::Written => {
                        "old readers look for it (a rename is a removal and an addition)".to_owned()
                    }
                };
                self.report(&at, old_shape, "absent".to_owned(), "removed-field", why);
                continue;
            };
            let was_required = o.required.contains(field);
            let is_required = n.required.contains(field);
            match self.side {
                Side::Read if is_required && !was_required => self.report(
                    &at,
                    format!("optional {}", Shape::of(old.doc, old_field)),
                    format!("required {}", Shape::of(new.doc, new_field)),
                    "field-made-required",
                    "old callers may leave it out; the new server refuses their requests"
                        .to_owned(),
                ),
                Side::Written if was_required && !is_required => self.report(
                    &at,
                    format!("required {}", Shape::of(old.doc, old_field)),
                    format!("optional {}", Shape::of(new.doc, new_field)),
                    "field-made-optional",
                    "it may now be left out; old readers require it".to_owned(),
                ),
                _ => {}
            }
            self.compare(old.at(old_field), new.at(new_field), &at);
        }
        for (field, new_field) in &n.properties {
            if o.properties.contains_key(field) {
                continue;
            }
            let at = join(path, field);
            let new_shape = Shape::of(new.doc, new_field).to_string();
            if self.side == Side::Read && n.required.contains(field) {
                self.report(
                    &at,
                    "absent".to_owned(),
                    format!("required {new_shape}"),
                    "new-required-field",
                    "old callers do not send it; the new server refuses their requests".to_owned(),
                );
            } else if o.closed {
                let why = match self.side {
                    Side::Read => {
                        "the old server refuses unknown fields (additionalProperties: false), so new callers' requests fail there"
                    }
                    Side::Written => {
                        "old readers refuse unknown fields (additionalProperties: false)"
                    }
                };
                self.report(
                    &at,
                    "absent (closed object)".to_owned(),
                    new_shape,
                    "added-field-to-closed-object",
                    why.to_owned(),
                );
            }
        }
        if self.side == Side::Read && n.closed && !o.closed {
            self.report(
                path,
                "open object".to_owned(),
                "closed object (additionalProperties: false)".to_owned(),
                "object-closed",
                "old callers' unknown fields are now refused".to_owned(),
            );
        }
        if let (Some(oa), Some(na)) = (o.additional, n.additional) {
            self.compare(old.at(oa), new.at(na), &join(path, "*"));
        }
    }

    /// Tagged enums and other unions: every alternative that must fit needs a partner
    /// that takes it.
    fn compare_unions(
        &mut self,
        old: Schema<'_>,
        new: Schema<'_>,
        o: &Shape<'_>,
        n: &Shape<'_>,
        path: &str,
    ) {
        let alternatives = |s: &Shape<'_>, side: Schema<'_>| -> Vec<Value> {
            if s.is_union() {
                s.variants.iter().map(|v| (*v).clone()).collect()
            } else {
                vec![side.schema.clone()]
            }
        };
        let (old_alts, new_alts) = (alternatives(o, old), alternatives(n, new));
        let (from_alts, from_doc, into_alts, into_doc) = match self.side {
            Side::Read => (&old_alts, old.doc, &new_alts, new.doc),
            Side::Written => (&new_alts, new.doc, &old_alts, old.doc),
        };
        for (i, alt) in from_alts.iter().enumerate() {
            let taken = into_alts.iter().any(|candidate| {
                let (a, b) = match self.side {
                    Side::Read => (
                        Schema {
                            doc: from_doc,
                            schema: alt,
                        },
                        Schema {
                            doc: into_doc,
                            schema: candidate,
                        },
                    ),
                    Side::Written => (
                        Schema {
                            doc: into_doc,
                            schema: candidate,
                        },
                        Schema {
                            doc: from_doc,
                            schema: alt,
                        },
                    ),
                };
                self.fits(a, b)
            });
            if !taken {
                let (rule, why) = match self.side {
                    Side::Read => (
                        "removed-variant",
                        format!(
                            "old callers' alternative #{} ({}) is no longer accepted",
                            i + 1,
                            Shape::of(from_doc, alt)
                        ),
                    ),
                    Side::Written => (
                        "added-variant",
                        format!(
                            "alternative #{} ({}) is new to old readers",
                            i + 1,
                            Shape::of(from_doc, alt)
                        ),
                    ),
                };
                self.report(path, o.to_string(), n.to_string(), rule, why);
            }
        }
        let (from_null, into_null) = match self.side {
            Side::Read => (o.types.contains("null"), n.types.contains("null")),
            Side::Written => (n.types.contains("null"), o.types.contains("null")),
        };
        if from_null && !into_null {
            let (rule, why) = match self.side {
                Side::Read => (
                    "null-refused",
                    "old callers may send null here; the new schema refuses it",
                ),
                Side::Written => (
                    "may-be-null",
                    "the value may now be null; old readers expect a value",
                ),
            };
            self.report(path, o.to_string(), n.to_string(), rule, why.to_owned());
        }
    }
}

/// Bounds beyond the type, for range findings.
fn detail(s: &Shape<'_>) -> String {
    let mut parts = Vec::new();
    if s.int_format.is_none() && (s.min.is_some() || s.max.is_some()) && !s.types.contains("string")
    {
        parts.push(format!("min {:?} max {:?}", s.min, s.max));
    }
    if let Some(p) = &s.pattern {
        parts.push(format!("pattern {p}"));
    }
    if s.min_length.is_some() || s.max_length.is_some() {
        parts.push(format!("length {:?}..{:?}", s.min_length, s.max_length));
    }
    if s.min_items.is_some() || s.max_items.is_some() {
        parts.push(format!("items {:?}..{:?}", s.min_items, s.max_items));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}
