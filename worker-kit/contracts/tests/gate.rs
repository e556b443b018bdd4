//! The gate over whole documents: the repository's own AsyncAPI documents, changed the way
//! a commit would change them.

use serde_json::{Value, json};
use worker_kit_contracts::document::{Contracts, Kind};
use worker_kit_contracts::gate::{Documents, check};

fn committed() -> Documents {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/asyncapi");
    worker_kit_contracts::git::documents_in(&dir).unwrap()
}

fn rules(base: &Documents, head: &Documents) -> Vec<(String, String, String)> {
    check(base, head)
        .unwrap()
        .into_iter()
        .map(|b| (b.name, b.path, b.rule))
        .collect()
}

fn remove_operation(doc: &mut Value, id: &str) {
    doc["operations"]
        .as_object_mut()
        .unwrap()
        .remove(id)
        .unwrap();
}

#[test]
fn the_committed_documents_are_compatible_with_themselves() {
    let docs = committed();
    assert_eq!(rules(&docs, &docs), vec![]);
    let example = Contracts::of(&docs["example"]).unwrap();
    assert_eq!(example.routes["example.items.create"].kind, Kind::Rpc);
    assert_eq!(example.routes["queue-test"].kind, Kind::Task);
    assert!(
        example
            .events
            .contains_key(&(Kind::Publishes, "example.item.created".to_owned()))
    );
    let catalog = Contracts::of(&docs["catalog"]).unwrap();
    assert!(
        catalog
            .events
            .contains_key(&(Kind::Subscribes, "example.item.deleted".to_owned()))
    );
}

#[test]
fn a_removed_route_breaks_unless_retired() {
    let base = committed();
    let mut head = base.clone();
    remove_operation(head.get_mut("example").unwrap(), "example.items.search");
    assert_eq!(
        rules(&base, &head),
        vec![(
            "example.items.search".to_owned(),
            String::new(),
            "removed-route".to_owned()
        )]
    );
    head.get_mut("example").unwrap()["x-retired"] = json!([{"name": "example.items.search", "reason": "every caller moved to catalog.items.search"}]);
    assert_eq!(rules(&base, &head), vec![]);
}

#[test]
fn a_removed_published_event_breaks_unless_retired_and_a_dropped_subscription_does_not() {
    let base = committed();
    let mut head = base.clone();
    remove_operation(
        head.get_mut("example").unwrap(),
        "publish.example.item.deleted",
    );
    assert_eq!(
        rules(&base, &head),
        vec![(
            "example.item.deleted".to_owned(),
            String::new(),
            "removed-event".to_owned()
        )]
    );
    head.get_mut("example").unwrap()["x-retired"] =
        json!([{"name": "example.item.deleted", "reason": "x"}]);
    assert_eq!(rules(&base, &head), vec![]);
    let mut head = base.clone();
    remove_operation(
        head.get_mut("catalog").unwrap(),
        "subscribe.example.item.deleted",
    );
    assert_eq!(rules(&base, &head), vec![]);
}

#[test]
fn an_rpc_route_turned_into_a_task_breaks() {
    let base = committed();
    let mut head = base.clone();
    head.get_mut("example").unwrap()["operations"]["example.items.get"]
        .as_object_mut()
        .unwrap()
        .remove("reply");
    assert_eq!(
        rules(&base, &head),
        vec![(
            "example.items.get".to_owned(),
            String::new(),
            "changed-kind".to_owned()
        )]
    );
}

#[test]
fn request_reply_and_event_changes_name_the_message() {
    let base = committed();
    let mut head = base.clone();
    let schemas = &mut head.get_mut("example").unwrap()["components"]["schemas"];
    schemas["CreateItem"]["required"] = json!(["name", "price_cents"]);
    schemas["ItemDeleted"]["properties"]["id"] = json!({"type": "string"});
    let found = check(&base, &head).unwrap();
    let create = found
        .iter()
        .find(|b| b.name == "example.items.create")
        .unwrap();
    assert_eq!(
        (create.message, create.path.as_str()),
        ("request", "price_cents")
    );
    assert_eq!(create.rule, "request.field-made-required");
    assert!(
        create.why.contains("v2"),
        "the way through is named: {}",
        create.why
    );
    let deleted = found
        .iter()
        .find(|b| b.name == "example.item.deleted" && b.service == "example")
        .unwrap();
    assert_eq!(deleted.rule, "event.changed-type");
    assert_eq!(
        (deleted.old.as_str(), deleted.new.as_str()),
        ("integer (int64)", "string")
    );
    // catalog still reads the old shape: the cross-check names it too.
    assert!(
        found
            .iter()
            .any(|b| b.service == "catalog" && b.rule == "subscriber.changed-type"),
        "{found:#?}"
    );
}

#[test]
fn a_new_service_or_route_is_no_break() {
    let base = committed();
    let mut head = base.clone();
    head.insert("billing".to_owned(), base["greeter"].clone());
    let mut smaller = base.clone();
    smaller.remove("greeter");
    assert_eq!(rules(&smaller, &head), vec![]);
}
