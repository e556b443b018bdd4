//! A JSON Schema (draft-07, as schemars writes it) reduced to what compatibility depends
//! on: the types a value may have, its allowed values and ranges, an object's fields, an
//! array's items, a union's alternatives. Descriptions, titles and defaults do not matter.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::document::resolve;

/// The JSON types, as JSON Schema names them.
const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// A schema's compatibility-relevant content.
#[derive(Debug, Clone, Default)]
pub struct Shape<'a> {
    /// Accepts any JSON value (`true`, `{}`, or only annotations).
    pub any: bool,
    /// The types a value may have (`null` included when it may be null).
    pub types: BTreeSet<&'static str>,
    /// The values allowed (`enum`, `const`), when restricted.
    pub values: Option<Vec<Value>>,
    /// A string's `format` (`date-time`, `uuid`, …).
    pub format: Option<String>,
    /// A number's bounds, from `minimum`/`maximum` and integer formats (`int32`, `uint8`…).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The integer `format` the bounds came from, for messages.
    pub int_format: Option<String>,
    /// A string's length bounds and pattern.
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<String>,
    /// An object's declared fields.
    pub properties: BTreeMap<String, &'a Value>,
    /// An object's required fields.
    pub required: BTreeSet<String>,
    /// `additionalProperties: false`: unknown fields are refused (`deny_unknown_fields`).
    pub closed: bool,
    /// A map's value schema (`additionalProperties` as a schema).
    pub additional: Option<&'a Value>,
    /// An array's item schema, and its length bounds.
    pub items: Option<&'a Value>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    /// A union's alternatives (`anyOf`/`oneOf` other than "X or null").
    pub variants: Vec<&'a Value>,
    /// The component it was defined as, for messages.
    pub name: Option<String>,
    /// The items' description, for messages (`string`, `Item`).
    pub items_label: Option<String>,
}

/// The bounds of an integer `format`.
fn format_range(format: &str) -> Option<(f64, f64)> {
    Some(match format {
        "int8" => (f64::from(i8::MIN), f64::from(i8::MAX)),
        "int16" => (f64::from(i16::MIN), f64::from(i16::MAX)),
        "int32" => (f64::from(i32::MIN), f64::from(i32::MAX)),
        // As f64: the comparison needs order, not exact bounds.
        "int64" => (-9.223_372_036_854_776e18, 9.223_372_036_854_776e18),
        "uint8" => (0.0, f64::from(u8::MAX)),
        "uint16" => (0.0, f64::from(u16::MAX)),
        "uint32" => (0.0, f64::from(u32::MAX)),
        "uint64" | "uint" => (0.0, 1.844_674_407_370_955_2e19),
        _ => return None,
    })
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn static_type(name: &str) -> Option<&'static str> {
    TYPES.iter().copied().find(|t| *t == name)
}

fn tighter_min(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn tighter_max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A bound for messages: whole numbers without a fraction, `…` when open.
fn bound(b: Option<f64>) -> String {
    match b {
        None => "…".to_owned(),
        // Bounds beyond 2^53 print as floats; an integer format names them anyway.
        #[allow(clippy::cast_possible_truncation)]
        Some(b) if b.fract() == 0.0 && b.abs() < 9.0e15 => format!("{}", b as i64),
        Some(b) => format!("{b}"),
    }
}

/// Whether `alternative` is the `{"type": "null"}` of an `Option`.
fn is_null_schema(doc: &Value, alternative: &Value) -> bool {
    let s = resolve(doc, alternative);
    s.get("type").and_then(Value::as_str) == Some("null") || s.get("const") == Some(&Value::Null)
}

impl<'a> Shape<'a> {
    /// The shape of `schema`, whose `$ref`s resolve in `doc`.
    pub fn of(doc: &'a Value, schema: &'a Value) -> Self {
        let name = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .map(str::to_owned);
        let schema = resolve(doc, schema);
        let mut shape = Self::of_resolved(doc, schema);
        if shape.name.is_none() {
            shape.name = name;
        }
        shape
    }

    fn of_resolved(doc: &'a Value, schema: &'a Value) -> Self {
        let Some(object) = schema.as_object() else {
            // `true` accepts anything; `false` nothing (treated as a type of its own).
            return Self {
                any: schema != &Value::Bool(false),
                ..Self::default()
            };
        };
        // A single `allOf` is how some generators attach annotations to a reference.
        if let Some([only]) = object
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            return Self::of(doc, only);
        }
        let alternatives = object
            .get("anyOf")
            .or_else(|| object.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(alternatives) = alternatives {
            let nullable = alternatives.iter().any(|a| is_null_schema(doc, a));
            let rest: Vec<&Value> = alternatives
                .iter()
                .filter(|a| !is_null_schema(doc, a))
                .collect();
            let mut shape = if let [only] = rest.as_slice() {
                Self::of(doc, only)
            } else {
                Self {
                    variants: rest,
                    ..Self::default()
                }
            };
            if nullable {
                shape.types.insert("null");
            }
            return shape;
        }
        let mut shape = Self::default();
        match object.get("type") {
            Some(Value::String(t)) => shape.types.extend(static_type(t)),
            Some(Value::Array(ts)) => shape
                .types
                .extend(ts.iter().filter_map(Value::as_str).filter_map(static_type)),
            _ => {}
        }
        if let Some(values) = object.get("enum").and_then(Value::as_array) {
            shape.values = Some(values.clone());
        }
        if let Some(value) = object.get("const") {
            shape.values = Some(vec![value.clone()]);
        }
        if shape.types.is_empty()
            && let Some(values) = &shape.values
        {
            shape.types.extend(values.iter().map(type_of));
        }
        if let Some(format) = object.get("format").and_then(Value::as_str) {
            if let Some((lo, hi)) = format_range(format) {
                shape.min = Some(lo);
                shape.max = Some(hi);
                shape.int_format = Some(format.to_owned());
            } else {
                shape.format = Some(format.to_owned());
            }
        }
        let number = |k: &str| object.get(k).and_then(Value::as_f64);
        shape.min = tighter_min(shape.min, number("minimum"));
        shape.min = tighter_min(shape.min, number("exclusiveMinimum"));
        shape.max = tighter_max(shape.max, number("maximum"));
        shape.max = tighter_max(shape.max, number("exclusiveMaximum"));
        let count = |k: &str| object.get(k).and_then(Value::as_u64);
        shape.min_length = count("minLength");
        shape.max_length = count("maxLength");
        shape.min_items = count("minItems");
        shape.max_items = count("maxItems");
        shape.pattern = object
            .get("pattern")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            shape.properties = properties.iter().map(|(k, v)| (k.clone(), v)).collect();
            if shape.types.is_empty() {
                shape.types.insert("object");
            }
        }
        if let Some(required) = object.get("required").and_then(Value::as_array) {
            shape.required = required
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        match object.get("additionalProperties") {
            Some(Value::Bool(false)) => shape.closed = true,
            Some(schema @ Value::Object(_)) => shape.additional = Some(schema),
            _ => {}
        }
        if let Some(items) = object
            .get("items")
            .filter(|i| i.is_object() || i.is_boolean())
        {
            shape.items = Some(items);
            // A reference by name: describing it in full could recurse forever.
            shape.items_label = Some(match items.get("$ref").and_then(Value::as_str) {
                Some(r) => r.rsplit('/').next().unwrap_or(r).to_owned(),
                None => Self::of(doc, items).to_string(),
            });
        }
        shape.any = shape.types.is_empty()
            && shape.values.is_none()
            && shape.properties.is_empty()
            && shape.items.is_none()
            && object.get("not").is_none();
        shape
    }

    /// Whether a value of JSON type `t` fits the types of this shape (an integer is a
    /// number; a schema that names no type, only fields or items, leaves the type open).
    pub fn admits_type(&self, t: &str) -> bool {
        self.any
            || self.types.is_empty()
            || self.types.contains(t)
            || (t == "integer" && self.types.contains("number"))
    }

    /// Whether this is a union of several alternatives.
    pub fn is_union(&self) -> bool {
        !self.variants.is_empty()
    }
}

/// A short description of a shape for messages: `integer (int32 range)`, `object Item {id,
/// name}`, `string | null`, `one of ["a", "b"]`.
impl fmt::Display for Shape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("any JSON");
        }
        if self.is_union() {
            write!(f, "one of {} alternatives", self.variants.len())?;
            if self.types.contains("null") {
                f.write_str(" | null")?;
            }
            return Ok(());
        }
        if let Some(values) = &self.values {
            let list: Vec<String> = values.iter().map(Value::to_string).collect();
            return write!(f, "one of [{}]", list.join(", "));
        }
        let mut parts = Vec::new();
        for t in &self.types {
            let mut part = (*t).to_owned();
            match *t {
                "object" => {
                    if let Some(name) = &self.name {
                        part.push(' ');
                        part.push_str(name);
                    }
                    if !self.properties.is_empty() {
                        let fields: Vec<String> = self
                            .properties
                            .keys()
                            .map(|k| {
                                if self.required.contains(k) {
                                    k.clone()
                                } else {
                                    format!("{k}?")
                                }
                            })
                            .collect();
                        part.push_str(&format!(" {{{}}}", fields.join(", ")));
                    }
                }
                "integer" | "number" => {
                    let from_format = self.int_format.as_deref().and_then(format_range);
                    if let Some(format) = &self.int_format {
                        part.push_str(&format!(" ({format})"));
                    }
                    if (self.min.is_some() || self.max.is_some())
                        && from_format != self.min.zip(self.max)
                    {
                        part.push_str(&format!(" [{}, {}]", bound(self.min), bound(self.max)));
                    }
                }
                "array" => {
                    if let Some(items) = &self.items_label {
                        part.push_str(&format!(" of {items}"));
                    }
                }
                "string" => {
                    if let Some(format) = &self.format {
                        part.push_str(&format!(" ({format})"));
                    }
                }
                _ => {}
            }
            parts.push(part);
        }
        // `null` last reads better: `string | null`.
        parts.sort_by_key(|p| p == "null");
        f.write_str(&parts.join(" | "))
    }
}
