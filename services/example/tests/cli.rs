//! The binary's contract with whoever starts it: exit codes and one-line errors.

use std::process::Command;

fn example() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_example"));
    // A clean environment: no .env from the working directory, no inherited settings.
    c.env_clear().current_dir(std::env::temp_dir());
    c
}

#[test]
fn a_bad_setting_exits_2_with_one_line_naming_it() {
    let out = example().env("AMQP_PREFETCH", "lots").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "AMQP_PREFETCH=\"lots\": expected a whole number from 1 to 65535, e.g. AMQP_PREFETCH=16"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_broker_exits_1_saying_where_without_the_password() {
    let out = example()
        .env("AMQP_URL", "amqp://app:hunter2@127.0.0.1:1/%2f")
        .env("AMQP_CONNECT_TIMEOUT_MS", "300")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("could not connect to amqp://app:***@127.0.0.1:1/%2f"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn asyncapi_prints_the_document_without_a_broker_or_a_database() {
    // No AMQP_URL, no database settings: the document is made from the route tables alone.
    let out = example().arg("asyncapi").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["title"], "example");
    let get = &doc["channels"]["example.items.get"];
    assert_eq!(get["address"], "example.items.get");
    assert_eq!(get["bindings"]["amqp"]["queue"]["durable"], false);
    assert_eq!(
        get["bindings"]["amqp"]["x-arguments"]["x-dead-letter-exchange"],
        "rpc.dlx"
    );
    let op = &doc["operations"]["example.items.get"];
    assert_eq!(op["action"], "receive");
    assert_eq!(
        op["reply"]["address"]["location"],
        "$message.header#/replyTo"
    );
    // The request's payload is the envelope around the contract's own schema.
    let request = &doc["components"]["messages"]["example.items.get.request"];
    assert_eq!(request["bindings"]["amqp"]["contentEncoding"], "gzip");
    assert_eq!(
        request["payload"]["properties"]["data"]["$ref"],
        "#/components/schemas/GetItem"
    );
    assert!(doc["components"]["schemas"]["GetItem"]["properties"]["id"].is_object());
    assert!(
        doc["components"]["schemas"]["Item"].is_object(),
        "reply schema missing"
    );
    // What it publishes on the events exchange, with the payload's schema.
    let created = &doc["channels"]["event.example.item.created"];
    assert_eq!(created["address"], "example.item.created");
    assert_eq!(created["bindings"]["amqp"]["exchange"]["name"], "events");
    assert_eq!(
        doc["operations"]["publish.example.item.created"]["action"],
        "send"
    );
    assert_eq!(
        doc["components"]["messages"]["event.example.item.created"]["payload"]["properties"]["data"]
            ["$ref"],
        "#/components/schemas/ItemCreated"
    );
    // The work-queue route: durable, no reply.
    let queue = &doc["channels"]["queue-test"];
    assert_eq!(queue["bindings"]["amqp"]["queue"]["durable"], true);
    assert!(doc["operations"]["queue-test"]["reply"].is_null());
}

#[test]
fn an_unknown_argument_exits_2_with_the_usage() {
    let out = example().arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("usage: example [asyncapi"), "{stderr}");
}
