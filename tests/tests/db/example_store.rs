//! The example service's store on its real schema (models/example), including every named
//! query of models/example/queries.sql.

use e2e::pg::TestDb;
use example::store::{ExampleQueries, Store};
use stubs::example::items::{CreateItem, PlaceOrder, UpdateItem};
use worker_kit::db::{Client, DbError, Executor};

async fn store() -> (TestDb, Store) {
    let db = TestDb::with_models("example").await;
    let client = Client::new("main", &db.config()).unwrap();
    (db, Store::new(client))
}

fn item(name: &str, price: i64) -> CreateItem {
    CreateItem {
        name: name.into(),
        price_cents: price,
        tags: vec![],
    }
}

#[tokio::test]
async fn items_crud_and_constraints() {
    let (db, store) = store().await;
    let lamp = store.create_item(&item("Lamp", 1999)).await.unwrap();
    assert_eq!(store.get_item(lamp.id).await.unwrap(), lamp);
    let updated = store
        .update_item(&UpdateItem {
            id: lamp.id,
            price_cents: Some(1499),
            ..UpdateItem::default()
        })
        .await
        .unwrap();
    assert_eq!((updated.name.as_str(), updated.price_cents), ("Lamp", 1499));
    assert!(
        updated.updated_at >= lamp.updated_at,
        "the trigger keeps updated_at current"
    );

    assert!(matches!(
        store.create_item(&item("Lamp", 1)).await,
        Err(DbError::Conflict { .. })
    ));
    assert!(matches!(
        store.create_item(&item("  ", 1)).await,
        Err(DbError::Invalid(_))
    ));
    assert!(matches!(
        store.create_item(&item("Neg", -1)).await,
        Err(DbError::Invalid(_))
    ));
    assert!(matches!(
        store.get_item(999_999).await,
        Err(DbError::NotFound { .. })
    ));
    store.delete_item(lamp.id).await.unwrap();
    assert!(matches!(
        store.get_item(lamp.id).await,
        Err(DbError::NotFound { .. })
    ));
    db.drop_db().await;
}

#[tokio::test]
async fn named_queries_from_the_sql_file() {
    let (db, store) = store().await;
    for name in ["Red chair", "Blue chair", "Table", "Chair cover"] {
        store.create_item(&item(name, 100)).await.unwrap();
    }
    let client = store.db();
    assert_eq!(client.count_items().await.unwrap(), 4);

    let chairs = client.search_items("CHAIR", 10).await.unwrap();
    assert_eq!(chairs.len(), 3, "case-insensitive substring");
    let first_two = client.search_items("chair", 2).await.unwrap();
    assert_eq!(first_two.len(), 2, "the limit applies");
    assert!(client.search_items("sofa", 10).await.unwrap().is_empty());

    let table = store.search_items("Table", None).await.unwrap().remove(0);
    assert_eq!(client.tag_item(table.id, "wood").await.unwrap(), 1);
    assert_eq!(
        client.tag_item(table.id, "wood").await.unwrap(),
        0,
        "a tag is added once"
    );
    assert_eq!(
        store.get_item(table.id).await.unwrap().tags,
        vec!["wood".to_owned()]
    );
    // Through the store, a tag is a change of the item: it emits its event, once.
    let events = |id: i64| {
        let client = client.clone();
        async move {
            client
                .query_rows(
                    "SELECT routing_key FROM worker_kit_outbox WHERE aggregate_id = $1",
                    &[&id.to_string()],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    let before = events(table.id).await;
    assert!(store.tag_item(table.id, "oak").await.unwrap());
    assert!(!store.tag_item(table.id, "oak").await.unwrap(), "unchanged");
    let after = events(table.id).await;
    assert_eq!(after.len(), before.len() + 1, "one event for one change");
    assert_eq!(after.last().unwrap(), "example.item.updated");
    let missing = store.tag_item(-1, "oak").await.unwrap_err();
    assert!(matches!(missing, DbError::NotFound { .. }), "{missing:?}");

    assert!(client.orders_for_item(table.id).await.unwrap().is_empty());
    for key in ["k1", "k2"] {
        store
            .place_order(&PlaceOrder {
                idempotency_key: key.into(),
                item_id: table.id,
                quantity: 1,
            })
            .await
            .unwrap();
    }
    assert_eq!(client.orders_for_item(table.id).await.unwrap().len(), 2);
    db.drop_db().await;
}

#[tokio::test]
async fn orders_are_idempotent_and_guard_their_item() {
    let (db, store) = store().await;
    let desk = store.create_item(&item("Desk", 10_000)).await.unwrap();
    let req = PlaceOrder {
        idempotency_key: "order-42".into(),
        item_id: desk.id,
        quantity: 2,
    };
    let results = futures::future::join_all((0..20).map(|_| {
        let (store, req) = (store.clone(), req.clone());
        async move { store.place_order(&req).await.unwrap() }
    }))
    .await;
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    assert!(results.iter().all(|(o, _)| o.id == results[0].0.id));

    let err = store
        .place_order(&PlaceOrder {
            idempotency_key: "bad".into(),
            item_id: 424_242,
            quantity: 1,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DbError::Conflict { ref constraint, .. } if constraint == "orders_item_id_fkey"),
        "{err:?}"
    );
    let err = store
        .place_order(&PlaceOrder {
            idempotency_key: "zero".into(),
            item_id: desk.id,
            quantity: 0,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Invalid(_)), "{err:?}");
    // An item with orders cannot be deleted.
    assert!(matches!(
        store.delete_item(desk.id).await,
        Err(DbError::Conflict { .. })
    ));
    db.drop_db().await;
}
