//! The Python seed is a caller too: every example body in docs/protocol.md ("The seed's
//! routes") fits the schema of the route it is sent to or answered by, in the document the
//! service prints. A contract change that would break a Python caller fails here.

use serde_json::Value;
use worker_kit_contracts::document::Contracts;
use worker_kit_contracts::instance::misfits;

/// The routes the seed's example API has: each needs a request example.
const SEED_ROUTES: [&str; 7] = [
    "hello_world",
    "test",
    "will-error",
    "dictionary",
    "db",
    "example-items",
    "queue-test",
];

/// One ```` ```json request ROUTE ```` or ```` ```json reply ROUTE ```` block.
struct Example {
    line: usize,
    kind: String,
    route: String,
    body: Value,
}

fn examples() -> Vec<Example> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let mut words = line.split_whitespace();
        if words.next() != Some("```json") {
            continue;
        }
        let (Some(kind), Some(route)) = (words.next(), words.next()) else {
            continue;
        };
        let body: String = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let body = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("docs/protocol.md:{}: not JSON: {e}", i + 1));
        out.push(Example {
            line: i + 1,
            kind: kind.to_owned(),
            route: route.to_owned(),
            body,
        });
    }
    out
}

#[test]
fn every_example_body_in_the_protocol_fits_its_route() {
    let doc = example::asyncapi().to_json();
    let contracts = Contracts::of(&doc).unwrap();
    let examples = examples();
    let mut wrong = Vec::new();
    for ex in &examples {
        let at = format!("docs/protocol.md:{} ({} {})", ex.line, ex.kind, ex.route);
        let Some(route) = contracts.routes.get(&ex.route) else {
            wrong.push(format!("{at}: the example service has no such route"));
            continue;
        };
        let (schema, data) = match ex.kind.as_str() {
            "request" => {
                let keys: Vec<&String> = ex
                    .body
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                if keys != ["data"] {
                    wrong.push(format!("{at}: a request body is {{\"data\": …}}"));
                    continue;
                }
                (route.input, &ex.body["data"])
            }
            "reply" => {
                let Some(reply) = route.reply else {
                    wrong.push(format!("{at}: the route answers no reply"));
                    continue;
                };
                if ex.body["success"] != Value::Bool(true) {
                    wrong.push(format!(
                        "{at}: a reply body is {{\"success\": true, \"data\": …}}"
                    ));
                    continue;
                }
                (reply, &ex.body["data"])
            }
            other => panic!("{at}: unknown example kind {other}: request or reply"),
        };
        for misfit in misfits(&doc, schema, data) {
            wrong.push(format!("{at}: {misfit}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "examples that no longer fit:\n{}",
        wrong.join("\n")
    );
    for route in SEED_ROUTES {
        assert!(
            examples
                .iter()
                .any(|e| e.kind == "request" && e.route == route),
            "docs/protocol.md has no request example for the seed's route {route}"
        );
    }
}

#[test]
fn a_body_that_does_not_fit_is_named() {
    // The check above can fail: the old price on the new route, and a missing name.
    let doc = example::asyncapi().to_json();
    let contracts = Contracts::of(&doc).unwrap();
    let v2 = contracts.routes["example.items.create.v2"].input;
    let found = misfits(&doc, v2, &serde_json::json!({"price_cents": 5}));
    assert!(
        found.iter().any(|m| m.contains("`name` is missing")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|m| m.contains("`price` is missing")),
        "{found:?}"
    );
    let found = misfits(
        &doc,
        v2,
        &serde_json::json!({"name": "Mug", "price": {"currency": "USD", "amount_minor": 1}}),
    );
    assert!(
        found.iter().any(|m| m.starts_with("price.currency")),
        "{found:?}"
    );
}
