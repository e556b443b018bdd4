//! Example values against schemas: what fits, and each way a value can miss.

use serde_json::{Value, json};
use worker_kit_contracts::instance::misfits;

fn doc() -> Value {
    json!({"components": {"schemas": {
        "Money": {"type": "object", "properties": {
            "currency": {"type": "string", "enum": ["EUR"]},
            "amount_minor": {"type": "integer", "format": "int64"}
        }, "required": ["currency", "amount_minor"]},
        "Item": {"type": "object", "properties": {
            "name": {"type": "string"},
            "price": {"anyOf": [{"$ref": "#/components/schemas/Money"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 0}
        }, "required": ["name"], "additionalProperties": false}
    }}})
}

fn check(value: Value) -> Vec<String> {
    let doc = doc();
    misfits(&doc, &json!({"$ref": "#/components/schemas/Item"}), &value)
}

#[test]
fn fitting_values_pass() {
    assert_eq!(check(json!({"name": "Mug"})), Vec::<String>::new());
    assert_eq!(
        check(
            json!({"name": "Mug", "price": {"currency": "EUR", "amount_minor": 5}, "tags": ["a"], "limit": 3})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        check(json!({"name": "Mug", "price": null, "limit": null})),
        Vec::<String>::new()
    );
}

#[test]
fn each_misfit_is_named_with_its_path() {
    assert_eq!(
        check(json!({})),
        vec!["(the value): the required field `name` is missing"]
    );
    assert_eq!(check(json!({"name": 1})), vec!["name: 1 is not string"]);
    assert_eq!(
        check(json!({"name": "Mug", "tags": ["a", 2]})),
        vec!["tags[1]: 2 is not string"]
    );
    assert_eq!(
        check(json!({"name": "Mug", "extra": true})),
        vec!["extra: unknown field (the object is closed)"]
    );
    assert_eq!(
        check(json!({"name": "Mug", "limit": -1})),
        vec!["limit: -1 is out of range for integer (uint32) | null"]
    );
    let found = check(json!({"name": "Mug", "price": {"currency": "USD", "amount_minor": 5}}));
    assert_eq!(
        found,
        vec![r#"price.currency: "USD" is not one of ["EUR"]"#]
    );
}
