//! Does a JSON value fit a schema? The subset of JSON Schema the contract types produce
//! (types, `enum`/`const`, integer ranges, lengths, fields, items, unions, `$ref`s): enough
//! to check a documented example body against the route it is sent to.

use serde_json::Value;

use crate::shape::Shape;

/// Why `value` does not fit `schema` (whose `$ref`s resolve in `doc`): one line per misfit,
/// each with its path; empty when it fits.
pub fn misfits(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(doc, schema, value, "", &mut out);
    out
}

fn type_fits(shape: &Shape<'_>, value: &Value) -> bool {
    let t = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    shape.admits_type(t)
}

fn at(path: &str) -> &str {
    if path.is_empty() { "(the value)" } else { path }
}

fn check(doc: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let shape = Shape::of(doc, schema);
    if shape.any {
        return;
    }
    if shape.is_union() {
        let fits = (value.is_null() && shape.types.contains("null"))
            || shape
                .variants
                .iter()
                .any(|v| misfits(doc, v, value).is_empty());
        if !fits {
            out.push(format!("{}: {value} fits none of {shape}", at(path)));
        }
        return;
    }
    if !type_fits(&shape, value) {
        out.push(format!("{}: {value} is not {shape}", at(path)));
        return;
    }
    if let Some(values) = &shape.values
        && !values.contains(value)
    {
        out.push(format!("{}: {value} is not {shape}", at(path)));
        return;
    }
    match value {
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or_default();
            if shape.min.is_some_and(|m| n < m) || shape.max.is_some_and(|m| n > m) {
                out.push(format!("{}: {n} is out of range for {shape}", at(path)));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if shape.min_length.is_some_and(|m| len < m)
                || shape.max_length.is_some_and(|m| len > m)
            {
                out.push(format!(
                    "{}: {len} characters is out of the allowed length",
                    at(path)
                ));
            }
        }
        Value::Array(items) => {
            if let Some(schema) = shape.items {
                for (i, item) in items.iter().enumerate() {
                    check(doc, schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(fields) => {
            for required in &shape.required {
                if !fields.contains_key(required) {
                    out.push(format!(
                        "{}: the required field `{required}` is missing",
                        at(path)
                    ));
                }
            }
            for (name, field) in fields {
                let here = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                match (shape.properties.get(name).copied(), shape.additional) {
                    (Some(schema), _) | (None, Some(schema)) => {
                        check(doc, schema, field, &here, out)
                    }
                    (None, None) if shape.closed => {
                        out.push(format!("{here}: unknown field (the object is closed)"));
                    }
                    (None, None) => {}
                }
            }
        }
        _ => {}
    }
}
