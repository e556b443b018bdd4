//! A breaking change served through a rollout: `example.items.create` (version 1, the price
//! in cents) and `example.items.create.v2` (the price as a currency amount) answered side by
//! side by one handler, on a vhost and database of this test's own.

use stubs::example::items::{CreateItem, CreateItemV2, GetItem, Money};
use worker_kit::rpc::CallError;
use worker_kit::testing::BrokerFixture;

fn remote_type(err: &CallError) -> &str {
    err.remote_type().unwrap_or("not a remote error")
}

#[tokio::test]
async fn old_and_new_callers_create_items_at_once_through_both_versions() {
    let db = e2e::pg::TestDb::with_models("example").await;
    let dsn = db.dsn.clone();
    let mut fx = BrokerFixture::from_env().unwrap();
    fx.start("example", |setup| {
        example::build(setup.with_var("DB_MAIN_DSN", dsn))
    })
    .await
    .unwrap();
    // A caller not yet redeployed and one already on version 2, on connections of their own.
    let old_caller = fx.client().await.unwrap();
    let new_caller = fx.client().await.unwrap();

    let kettle = CreateItem {
        name: "Kettle".into(),
        price_cents: 2_499,
        tags: vec!["kitchen".into()],
    };
    let toaster = CreateItemV2 {
        name: "Toaster".into(),
        price: Money::eur(3_999),
        tags: vec![],
        expires_in_ms: None,
    };
    let (old_item, new_item) = tokio::join!(old_caller.call(&kettle), new_caller.call(&toaster));
    let (old_item, new_item) = (old_item.unwrap(), new_item.unwrap());
    assert_eq!(old_item.price_cents, 2_499);
    assert_eq!(new_item.price, Money::eur(3_999));
    assert_ne!(old_item.id, new_item.id);

    // One store behind both: each caller reads the other's item in its own shape.
    let toaster = old_caller.call(&GetItem { id: new_item.id }).await.unwrap();
    assert_eq!(toaster.price_cents, 3_999);
    assert_eq!(toaster.name, "Toaster");
    assert_eq!(
        old_caller.call(&GetItem { id: old_item.id }).await.unwrap(),
        old_item
    );
    // The rules are the handler's, whichever version asked: the name is taken either way.
    let err = new_caller
        .call(&CreateItemV2 {
            name: "Kettle".into(),
            price: Money::eur(1),
            tags: vec![],
            expires_in_ms: None,
        })
        .await
        .unwrap_err();
    assert_eq!(remote_type(&err), "Conflict");
    // Each version keeps its own shape: the old one on the new route, or a currency the
    // service does not price in, is refused before the handler runs.
    let err = new_caller
        .call_json(
            "example.items.create.v2",
            serde_json::json!({"name": "Mug", "price_cents": 500}),
        )
        .await
        .unwrap_err();
    assert_eq!(remote_type(&err), "ValidationError");
    let err = new_caller
        .call_json(
            "example.items.create.v2",
            serde_json::json!({"name": "Mug", "price": {"currency": "USD", "amount_minor": 500}}),
        )
        .await
        .unwrap_err();
    assert_eq!(remote_type(&err), "ValidationError");

    fx.finish().await.unwrap();
    db.drop_db().await;
}
