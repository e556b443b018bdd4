//! The example service's CRUD through the broker, on its real schema.

use stubs::example::items::{
    CreateItem, DeleteItem, GetItem, ListItems, PlaceOrder, SearchItems, UpdateItem,
};
use worker_kit::rpc::{CallError, RpcClient};

fn remote_type(err: &CallError) -> &str {
    err.remote_type().unwrap_or("not a remote error")
}

#[tokio::test]
async fn items_crud_through_the_broker() {
    let _serial = e2e::example_service_lock().await;
    let (running, db) = e2e::start_example(|s| s).await;
    let c = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();

    let lamp = c
        .call(&CreateItem {
            name: "Lamp".into(),
            price_cents: 1999,
            tags: vec!["light".into()],
        })
        .await
        .unwrap();
    assert_eq!(c.call(&GetItem { id: lamp.id }).await.unwrap(), lamp);

    let err = c
        .call(&CreateItem {
            name: "Lamp".into(),
            price_cents: 1,
            tags: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(remote_type(&err), "Conflict");
    let err = c
        .call(&CreateItem {
            name: " ".into(),
            price_cents: 1,
            tags: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(remote_type(&err), "ValidationError");
    let err = c.call(&GetItem { id: -1 }).await.unwrap_err();
    assert_eq!(remote_type(&err), "NotFound");
    // A payload of the wrong shape never reaches the database.
    let err = c
        .call_json("example.items.get", serde_json::json!({"id": "seven"}))
        .await
        .unwrap_err();
    assert_eq!(remote_type(&err), "ValidationError");

    let cheaper = c
        .call(&UpdateItem {
            id: lamp.id,
            price_cents: Some(1499),
            ..UpdateItem::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            cheaper.name.as_str(),
            cheaper.price_cents,
            cheaper.tags.clone()
        ),
        ("Lamp", 1499, vec!["light".to_owned()])
    );
    let err = c
        .call(&UpdateItem {
            id: lamp.id,
            ..UpdateItem::default()
        })
        .await
        .unwrap_err();
    assert_eq!(remote_type(&err), "BadRequest");

    for i in 0..25 {
        c.call(&CreateItem {
            name: format!("chair {i:02}"),
            price_cents: i,
            tags: vec![],
        })
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .call(&ListItems {
                after,
                limit: Some(10),
            })
            .await
            .unwrap();
        names.extend(page.items.into_iter().map(|i| i.name));
        match page.last_reference {
            Some(r) => after = Some(r),
            None => break,
        }
    }
    assert_eq!(names.len(), 26, "every item exactly once across pages");
    let found = c
        .call(&SearchItems {
            text: "CHAIR 1".into(),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 10, "chair 10 to chair 19");

    let order = PlaceOrder {
        idempotency_key: "client-key-1".into(),
        item_id: lamp.id,
        quantity: 3,
    };
    let first = c.call(&order).await.unwrap();
    let again = c.call(&order).await.unwrap();
    assert!(first.created && !again.created);
    assert_eq!(first.order, again.order);

    let err = c.call(&DeleteItem { id: lamp.id }).await.unwrap_err();
    assert_eq!(
        remote_type(&err),
        "Conflict",
        "orders still point at the lamp"
    );
    let chair = c
        .call(&SearchItems {
            text: "chair 00".into(),
            limit: None,
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        c.call(&DeleteItem { id: chair.id }).await.unwrap().id,
        chair.id
    );
    assert_eq!(
        remote_type(&c.call(&GetItem { id: chair.id }).await.unwrap_err()),
        "NotFound"
    );

    running.stop().await.unwrap();
    db.drop_db().await;
}

/// Out-of-range arguments are refused naming the field and the range, never changed
/// silently; a request whose fields are all optional may come without a payload.
#[tokio::test]
async fn out_of_range_arguments_are_refused() {
    let _serial = e2e::example_service_lock().await;
    let (running, db) = e2e::start_example(|s| s).await;
    let c = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();
    for limit in [0, 1001] {
        let err = c
            .call(&ListItems {
                after: None,
                limit: Some(limit),
            })
            .await
            .unwrap_err();
        assert_eq!(remote_type(&err), "ValidationError", "{err}");
        let text = err.to_string();
        assert!(
            text.contains("limit")
                && text.contains("1 to 1000")
                && text.contains(&limit.to_string()),
            "{text}"
        );
        let err = c
            .call(&SearchItems {
                text: "a".into(),
                limit: Some(limit),
            })
            .await
            .unwrap_err();
        assert_eq!(remote_type(&err), "ValidationError", "{err}");
    }
    let page = c
        .call_json("example.items.list", serde_json::Value::Null)
        .await
        .unwrap();
    assert!(page["items"].is_array(), "{page}");
    running.stop().await.unwrap();
    db.drop_db().await;
}
