//! Every compatibility rule on a small pair of schemas, on the side it applies to, and the
//! changes each side tolerates.

use serde_json::{Value, json};
use worker_kit_contracts::compat::{Schema, Side, compare};

/// The rules `old` → `new` breaks on `side`, with their paths.
fn broken(old: &Value, new: &Value, side: Side) -> Vec<(String, &'static str)> {
    broken_in(&json!({}), old, new, side)
}

fn broken_in(doc: &Value, old: &Value, new: &Value, side: Side) -> Vec<(String, &'static str)> {
    compare(
        Schema { doc, schema: old },
        Schema { doc, schema: new },
        side,
    )
    .into_iter()
    .map(|f| (f.path, f.rule))
    .collect()
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn one(path: &str, rule: &'static str) -> Vec<(String, &'static str)> {
    vec![(path.to_owned(), rule)]
}

fn int(format: &str) -> Value {
    json!({"type": "integer", "format": format})
}

// --- read by the service (requests, task messages, subscribed events) ---

#[test]
fn request_new_required_field_breaks() {
    let old = object(json!({"name": {"type": "string"}}), &["name"]);
    let new = object(
        json!({"name": {"type": "string"}, "currency": {"type": "string"}}),
        &["name", "currency"],
    );
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("currency", "new-required-field")
    );
}

#[test]
fn request_field_made_required_breaks() {
    let old = object(json!({"price": int("int64")}), &[]);
    let new = object(json!({"price": int("int64")}), &["price"]);
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("price", "field-made-required")
    );
}

#[test]
fn request_removed_field_breaks() {
    let old = object(
        json!({"name": {"type": "string"}, "tags": {"type": "array"}}),
        &["name"],
    );
    let new = object(json!({"name": {"type": "string"}}), &["name"]);
    assert_eq!(broken(&old, &new, Side::Read), one("tags", "removed-field"));
}

#[test]
fn request_narrowed_type_breaks() {
    let old = object(json!({"id": {"type": "number"}}), &["id"]);
    let new = object(json!({"id": {"type": "integer"}}), &["id"]);
    assert_eq!(broken(&old, &new, Side::Read), one("id", "narrowed-type"));
    let to_string = object(json!({"id": {"type": "string"}}), &["id"]);
    assert_eq!(
        broken(&old, &to_string, Side::Read),
        one("id", "narrowed-type")
    );
}

#[test]
fn request_null_no_longer_accepted_breaks() {
    let old = json!({"type": ["string", "null"]});
    let new = json!({"type": "string"});
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("(the whole payload)", "null-refused")
    );
}

#[test]
fn request_narrowed_range_breaks() {
    assert_eq!(
        broken(&int("uint32"), &int("uint8"), Side::Read),
        one("(the whole payload)", "narrowed-range")
    );
    let old = json!({"type": "integer", "minimum": 0});
    let new = json!({"type": "integer", "minimum": 1});
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("(the whole payload)", "narrowed-range")
    );
    let old = json!({"type": "string"});
    let new = json!({"type": "string", "maxLength": 10});
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("(the whole payload)", "narrowed-range")
    );
    let new = json!({"type": "string", "format": "date-time"});
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("(the whole payload)", "narrowed-range")
    );
}

#[test]
fn request_removed_enum_value_breaks() {
    let old = json!({"type": "string", "enum": ["EUR", "USD"]});
    let new = json!({"type": "string", "enum": ["EUR"]});
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("(the whole payload)", "removed-enum-value")
    );
    let free = json!({"type": "string"});
    assert_eq!(
        broken(&free, &new, Side::Read),
        one("(the whole payload)", "narrowed-values")
    );
}

#[test]
fn request_closed_object_breaks() {
    let old = object(json!({"id": int("int64")}), &["id"]);
    let mut new = old.clone();
    new["additionalProperties"] = json!(false);
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("(the whole payload)", "object-closed")
    );
    // An old server that refuses unknown fields cannot take a new optional one.
    let mut grown = object(
        json!({"id": int("int64"), "note": {"type": "string"}}),
        &["id"],
    );
    grown["additionalProperties"] = json!(false);
    assert_eq!(
        broken(&new, &grown, Side::Read),
        one("note", "added-field-to-closed-object")
    );
}

#[test]
fn request_any_json_narrowed_breaks() {
    assert_eq!(
        broken(&json!(true), &json!({"type": "object"}), Side::Read),
        one("(the whole payload)", "narrowed-type")
    );
}

#[test]
fn request_removed_variant_breaks() {
    let circle = object(
        json!({"kind": {"const": "circle"}, "r": {"type": "number"}}),
        &["kind", "r"],
    );
    let square = object(
        json!({"kind": {"const": "square"}, "side": {"type": "number"}}),
        &["kind", "side"],
    );
    let old = json!({"oneOf": [circle, square]});
    let new = json!({"oneOf": [circle]});
    assert_eq!(
        broken(&old, &new, Side::Read),
        one("(the whole payload)", "removed-variant")
    );
    // Adding one is tolerated by the reader.
    assert!(broken(&new, &old, Side::Read).is_empty());
}

#[test]
fn request_additions_both_sides_tolerate_pass() {
    let old = object(
        json!({"name": {"type": "string"}, "limit": int("uint32")}),
        &["name"],
    );
    let new = object(
        json!({
            "name": {"type": ["string", "null"]},
            "limit": int("uint64"),
            "tags": {"type": "array", "items": {"type": "string"}, "default": []}
        }),
        &[],
    );
    assert_eq!(broken(&old, &new, Side::Read), vec![]);
    let old = json!({"enum": ["EUR"]});
    let new = json!({"enum": ["EUR", "USD"]});
    assert_eq!(broken(&old, &new, Side::Read), vec![]);
    assert_eq!(broken(&old, &json!({}), Side::Read), vec![]);
}

// --- written by the service (replies, published events) ---

#[test]
fn reply_removed_or_renamed_field_breaks() {
    let old = object(
        json!({"id": int("int64"), "price_cents": int("int64")}),
        &["id", "price_cents"],
    );
    let new = object(
        json!({"id": int("int64"), "price": {"type": "object"}}),
        &["id", "price"],
    );
    assert_eq!(
        broken(&old, &new, Side::Written),
        one("price_cents", "removed-field")
    );
}

#[test]
fn reply_field_made_optional_breaks() {
    let old = object(json!({"name": {"type": "string"}}), &["name"]);
    let new = object(json!({"name": {"type": "string"}}), &[]);
    assert_eq!(
        broken(&old, &new, Side::Written),
        one("name", "field-made-optional")
    );
}

#[test]
fn reply_changed_type_breaks() {
    let old = object(json!({"id": int("int64")}), &["id"]);
    let new = object(json!({"id": {"type": "string"}}), &["id"]);
    assert_eq!(broken(&old, &new, Side::Written), one("id", "changed-type"));
    assert_eq!(
        broken(&json!({"type": "string"}), &json!(true), Side::Written),
        one("(the whole payload)", "changed-type")
    );
}

#[test]
fn reply_value_that_may_now_be_null_breaks() {
    let old = object(json!({"name": {"type": "string"}}), &["name"]);
    let new = object(json!({"name": {"type": ["string", "null"]}}), &["name"]);
    assert_eq!(
        broken(&old, &new, Side::Written),
        one("name", "may-be-null")
    );
}

#[test]
fn reply_widened_range_breaks() {
    assert_eq!(
        broken(&int("int32"), &int("int64"), Side::Written),
        one("(the whole payload)", "widened-range")
    );
}

#[test]
fn reply_added_enum_value_breaks() {
    let old = json!({"type": "string", "enum": ["EUR"]});
    let new = json!({"type": "string", "enum": ["EUR", "USD"]});
    assert_eq!(
        broken(&old, &new, Side::Written),
        one("(the whole payload)", "added-enum-value")
    );
}

#[test]
fn reply_added_field_to_closed_object_breaks() {
    let mut old = object(json!({"id": int("int64")}), &["id"]);
    old["additionalProperties"] = json!(false);
    let new = object(
        json!({"id": int("int64"), "note": {"type": "string"}}),
        &["id"],
    );
    assert_eq!(
        broken(&old, &new, Side::Written),
        one("note", "added-field-to-closed-object")
    );
}

#[test]
fn reply_added_variant_breaks() {
    let a = object(json!({"a": {"type": "string"}}), &["a"]);
    let b = object(json!({"b": {"type": "string"}}), &["b"]);
    let old = json!({"oneOf": [a]});
    let new = json!({"oneOf": [a, b]});
    assert_eq!(
        broken(&old, &new, Side::Written),
        one("(the whole payload)", "added-variant")
    );
}

#[test]
fn reply_additions_old_readers_tolerate_pass() {
    let old = object(json!({"id": int("int64"), "n": int("int64")}), &["id"]);
    let new = object(
        json!({"id": int("int64"), "n": int("int32"), "note": {"type": "string"}}),
        &["id", "n"],
    );
    assert_eq!(broken(&old, &new, Side::Written), vec![]);
    let old = json!({"enum": ["EUR", "USD"]});
    let new = json!({"enum": ["EUR"]});
    assert_eq!(broken(&old, &new, Side::Written), vec![]);
}

// --- references and nesting ---

#[test]
fn refs_into_components_are_followed_with_paths() {
    let doc = json!({"components": {"schemas": {
        "Item": object(json!({"id": int("int64"), "tags": {"type": "array", "items": {"type": "string"}}}), &["id", "tags"]),
        "ItemV": object(json!({"id": int("int64"), "tags": {"type": "array", "items": {"type": "integer"}}}), &["id", "tags"]),
        "Page": object(json!({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}), &["items"]),
        "PageV": object(json!({"items": {"type": "array", "items": {"$ref": "#/components/schemas/ItemV"}}}), &["items"])
    }}});
    let old = json!({"$ref": "#/components/schemas/Page"});
    let new = json!({"$ref": "#/components/schemas/PageV"});
    assert_eq!(
        broken_in(&doc, &old, &new, Side::Written),
        one("items[].tags[]", "changed-type")
    );
}

#[test]
fn optional_references_are_nullable() {
    let doc = json!({"components": {"schemas": {"Money": object(json!({"amount": int("int64")}), &["amount"])}}});
    let required = json!({"$ref": "#/components/schemas/Money"});
    let optional = json!({"anyOf": [{"$ref": "#/components/schemas/Money"}, {"type": "null"}]});
    assert_eq!(
        broken_in(&doc, &required, &optional, Side::Written),
        one("(the whole payload)", "may-be-null")
    );
    assert_eq!(
        broken_in(&doc, &optional, &required, Side::Read),
        one("(the whole payload)", "null-refused")
    );
    assert!(broken_in(&doc, &required, &optional, Side::Read).is_empty());
}

#[test]
fn recursive_types_end() {
    let doc = json!({"components": {"schemas": {
        "Tree": object(json!({"children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}, "n": int("int32")}), &["children", "n"])
    }}});
    let tree = json!({"$ref": "#/components/schemas/Tree"});
    assert!(broken_in(&doc, &tree, &tree, Side::Read).is_empty());
    assert!(broken_in(&doc, &tree, &tree, Side::Written).is_empty());
}

#[test]
fn messages_name_old_and_new_shapes() {
    let old = object(json!({"price_cents": int("int64")}), &["price_cents"]);
    let new = object(json!({"price_cents": {"type": "string"}}), &["price_cents"]);
    let doc = json!({});
    let found = compare(
        Schema {
            doc: &doc,
            schema: &old,
        },
        Schema {
            doc: &doc,
            schema: &new,
        },
        Side::Written,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].old, "integer (int64)");
    assert_eq!(found[0].new, "string");
    assert!(found[0].why.contains("old readers"), "{}", found[0].why);
}

#[test]
fn a_schema_that_names_no_type_leaves_it_open() {
    let untyped = json!({"properties": {"id": int("int64")}});
    let typed = object(json!({"id": int("int64")}), &[]);
    assert_eq!(broken(&untyped, &typed, Side::Written), vec![]);
    let untyped_items = json!({"items": {"type": "string"}});
    let array = json!({"type": "array", "items": {"type": "string"}});
    assert_eq!(broken(&untyped_items, &array, Side::Written), vec![]);
    // The fields inside are still compared.
    let narrowed = json!({"properties": {"id": int("int32")}});
    assert_eq!(
        broken(&untyped, &narrowed, Side::Read),
        one("id", "narrowed-range")
    );
}
