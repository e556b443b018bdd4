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

#[tokio::test]
async fn catalog_follows_example_and_a_caller_reads_its_own_write() {
    let _serial = e2e::example_service_lock().await;
    let exchange = unique("events");
    let catalog_name = leak(unique("catalog"));
    let write = TestDb::with_models("example").await;
    let read = TestDb::with_models("catalog").await;
    let example = example::build_on(e2e::setup("example").await, &write.config(), &exchange)
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let catalog = catalog::build_on(e2e::setup(catalog_name).await, &read.config(), &exchange)
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
