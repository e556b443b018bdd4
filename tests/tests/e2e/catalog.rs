//! `example` emits item events through its outbox; `catalog` keeps a read model of them.
//! A caller reads its own write through `example` at once and the eventually consistent
//! view through `catalog`.

use std::time::Duration;

use e2e::pg::TestDb;
use e2e::{RawPeer, unique, wait_until};
use stubs::catalog::{GetCatalogItem, GetFreshness, SearchCatalog};
use stubs::example::items::{CreateItem, DeleteItem, GetItem, UpdateItem};
use worker_kit::events::subscription_queue;
use worker_kit::rpc::RpcClient;

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The setup of `service` on database `db`, its events on `exchange`.
async fn on(service: &'static str, db: &TestDb, exchange: &str) -> worker_kit::Setup {
    e2e::setup(service)
        .await
        .with_var("DB_MAIN_DSN", &db.dsn)
        .with_var("EVENTS_EXCHANGE", exchange)
}

#[tokio::test]
async fn catalog_follows_example_and_a_caller_reads_its_own_write() {
    let _serial = e2e::example_service_lock().await;
    let exchange = unique("events");
    let catalog_name = leak(unique("catalog"));
    let write = TestDb::with_models("example").await;
    let read = TestDb::with_models("catalog").await;
    let example = example::build(on("example", &write, &exchange).await)
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let catalog = catalog::build(on(catalog_name, &read, &exchange).await)
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let c = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();

    // Before any event: nothing applied (the progress row is written by the first event).
    let before = c.call(&GetFreshness {}).await.unwrap();
    assert_eq!((before.applied, before.last_event_at), (0, None));
    // A page size out of range is refused, not clamped.
    let refused = c
        .call(&SearchCatalog {
            text: String::new(),
            after: None,
            limit: Some(0),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.remote_type(), Some("ValidationError"));

    let mut ids = Vec::new();
    for i in 0..30 {
        let tags = if i % 3 == 0 {
            vec!["red".to_owned()]
        } else {
            vec!["blue".to_owned()]
        };
        let item = c
            .call(&CreateItem {
                name: format!("lamp {i}"),
                price_cents: i,
                tags,
            })
            .await
            .unwrap();
        // Its own write, through the write model: at once.
        assert_eq!(c.call(&GetItem { id: item.id }).await.unwrap(), item);
        ids.push(item.id);
    }
    for id in ids.iter().step_by(2) {
        c.call(&UpdateItem {
            id: *id,
            name: None,
            price_cents: Some(999),
            tags: None,
        })
        .await
        .unwrap();
    }
    for id in ids.iter().take(5) {
        c.call(&DeleteItem { id: *id }).await.unwrap();
    }
    // The eventually consistent view, through the catalog.
    let last = *ids.last().unwrap();
    wait_until(Duration::from_secs(20), "catalog has the last item", || {
        let c = &c;
        async move { c.call(&GetCatalogItem { id: last }).await.is_ok() }
    })
    .await;
    wait_until(
        Duration::from_secs(20),
        "read model equals write model",
        || {
            let (write, read) = (&write, &read);
            async move {
                let (w, r) = e2e::read_model::items(write, read).await;
                w == r
            }
        },
    )
    .await;
    let (w, _) = e2e::read_model::items(&write, &read).await;
    assert_eq!(w.len(), 25);
    let deleted = c.call(&GetCatalogItem { id: ids[0] }).await.unwrap_err();
    assert_eq!(deleted.remote_type(), Some("NotFound"));

    // Search over tags, in keyset pages.
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .call(&SearchCatalog {
                text: "red".into(),
                after,
                limit: Some(3),
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        assert!(page.freshness.last_event_at.is_some());
        found.extend(page.items.iter().map(|i| i.id));
        match page.last_reference {
            Some(r) => after = Some(r),
            None => break,
        }
    }
    let expected: Vec<i64> = w
        .iter()
        .filter(|i| i.tags == ["red"])
        .map(|i| i.id)
        .collect();
    assert_eq!(found, expected);
    let by_name = c
        .call(&SearchCatalog {
            text: "lamp 29".into(),
            after: None,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(
        by_name.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![last]
    );
    let freshness = c.call(&GetFreshness {}).await.unwrap();
    assert_eq!(freshness.applied, 30 + 15 + 5);

    catalog.stop().await.unwrap();
    example.stop().await.unwrap();
    let peer = RawPeer::connect().await;
    for key in [
        "example.item.created",
        "example.item.updated",
        "example.item.deleted",
    ] {
        let q = subscription_queue(catalog_name, key);
        peer.delete_routes(&[&q]).await;
    }
    let _ = peer
        .channel
        .exchange_delete(
            exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    write.drop_db().await;
    read.drop_db().await;
}

/// Publishes the item event `name` for `item` with outbox number `seq` to `exchange`, as the
/// outbox relay would (plain JSON: the kit accepts it as well as gzip).
async fn publish_item_event(
    peer: &RawPeer,
    exchange: &str,
    name: &str,
    item: &stubs::example::items::Item,
    seq: i64,
) {
    use lapin::types::{AMQPValue, FieldTable};
    let mut headers = FieldTable::default();
    headers.insert(
        worker_kit::events::SEQ_HEADER.into(),
        AMQPValue::LongLongInt(seq),
    );
    headers.insert(
        "x-aggregate-id".into(),
        AMQPValue::LongString(item.id.to_string().into()),
    );
    let props = lapin::BasicProperties::default()
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_type(name.into())
        .with_delivery_mode(2)
        .with_headers(headers);
    let body = serde_json::to_vec(&serde_json::json!({ "data": item })).unwrap();
    peer.channel
        .basic_publish(
            exchange.into(),
            name.into(),
            lapin::options::BasicPublishOptions::default(),
            &body,
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("publish confirm");
}

/// Issue 25.4: a read model bounds what a sequence may jump. A forged event whose
/// `x-outbox-seq` is far beyond the newest the read model applied (here i64::MAX, which would
/// lock the row: every later event is "older") is parked as `SequenceJump`, not applied, and
/// the item's next real event still applies.
#[tokio::test]
async fn a_sequence_that_jumps_too_far_is_parked_not_applied() {
    use stubs::example::items::Item;
    let exchange = unique("events-seq");
    let catalog_name = leak(unique("catalog-seq"));
    let read = TestDb::with_models("catalog").await;
    let catalog = catalog::build(on(catalog_name, &read, &exchange).await)
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let c = RpcClient::new(&e2e::broker("caller").await, &e2e::config())
        .await
        .unwrap();
    let peer = RawPeer::connect().await;
    let now = chrono::Utc::now();
    let item = |name: &str| Item {
        id: 7,
        name: name.to_owned(),
        price_cents: 100,
        tags: vec![],
        created_at: now,
        updated_at: now,
    };
    let named = |name: &'static str| {
        let c = &c;
        move || async move {
            c.call(&GetCatalogItem { id: 7 })
                .await
                .is_ok_and(|i| i.name == name)
        }
    };

    publish_item_event(&peer, &exchange, "example.item.created", &item("real"), 10).await;
    wait_until(
        Duration::from_secs(20),
        "the created item applied",
        named("real"),
    )
    .await;
    publish_item_event(
        &peer,
        &exchange,
        "example.item.updated",
        &item("forged"),
        i64::MAX,
    )
    .await;
    let updated = subscription_queue(catalog_name, "example.item.updated");
    let dead = worker_kit::queue::parking_queue(&updated);
    wait_until(Duration::from_secs(20), "the forged event parked", || {
        let (peer, dead) = (&peer, &dead);
        async move { peer.exists(dead).await && peer.ready_count(dead).await == 1 }
    })
    .await;
    let parked = peer.get(&dead).await.expect("the parked event");
    let error_type = parked
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-error-type").cloned());
    assert_eq!(
        error_type,
        Some(lapin::types::AMQPValue::LongString("SequenceJump".into()))
    );
    publish_item_event(&peer, &exchange, "example.item.updated", &item("next"), 11).await;
    wait_until(
        Duration::from_secs(20),
        "the item's next real event applied",
        named("next"),
    )
    .await;

    catalog.stop().await.unwrap();
    for key in [
        "example.item.created",
        "example.item.updated",
        "example.item.deleted",
    ] {
        peer.delete_routes(&[&subscription_queue(catalog_name, key)])
            .await;
    }
    let _ = peer
        .channel
        .exchange_delete(
            exchange.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    read.drop_db().await;
}
