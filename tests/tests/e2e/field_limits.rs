//! Issue 25.9: stored data cannot outgrow replies. The example's inputs have field limits
//! (documented on the contracts in `stubs`), and a page of `example.items.list` is cut to a
//! byte budget, so no number of items makes a list reply larger than the broker accepts.

use stubs::example::items::{CreateItem, ItemPage, ListItems, UpdateItem};
use worker_kit::rpc::RpcClient;

/// The byte budget of one page (`example::store::MAX_PAGE_BYTES`).
const MAX_PAGE_BYTES: usize = 1024 * 1024;

#[tokio::test]
async fn inputs_are_bounded_and_list_pages_fit_a_byte_budget() {
    let _serial = e2e::example_service_lock().await;
    let (running, db) = e2e::start_example(|s| s).await;
    let c = RpcClient::new(&e2e::broker("field-limits").await, &e2e::config())
        .await
        .unwrap();

    let too_long = [
        CreateItem {
            name: "n".repeat(257),
            price_cents: 1,
            tags: vec![],
        },
        CreateItem {
            name: "tagged".into(),
            price_cents: 1,
            tags: vec!["t".repeat(65)],
        },
        CreateItem {
            name: "many tags".into(),
            price_cents: 1,
            tags: (0..17).map(|i| format!("t{i}")).collect(),
        },
    ];
    for req in &too_long {
        let err = c.call(req).await.unwrap_err();
        assert_eq!(
            err.remote_type(),
            Some("ValidationError"),
            "{}: {err}",
            &req.name[..req.name.len().min(20)]
        );
    }
    let first = c
        .call(&CreateItem {
            name: "short".into(),
            price_cents: 1,
            tags: vec![],
        })
        .await
        .unwrap();
    let err = c
        .call(&UpdateItem {
            id: first.id,
            name: Some("n".repeat(300)),
            price_cents: None,
            tags: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.remote_type(), Some("ValidationError"), "{err}");

    // Items as large as the limits allow, more than one page's byte budget of them.
    let tags: Vec<String> = (0..16)
        .map(|i| format!("{i:02}{}", "t".repeat(62)))
        .collect();
    let mut made = 1;
    while made * (256 + 16 * 64) < MAX_PAGE_BYTES * 5 / 4 {
        c.call(&CreateItem {
            name: format!("{made:06}{}", "n".repeat(250)),
            price_cents: 1,
            tags: tags.clone(),
        })
        .await
        .unwrap();
        made += 1;
    }
    let mut seen = 0;
    let mut after = None;
    let mut pages = 0;
    loop {
        let page: ItemPage = c
            .call(&ListItems {
                after,
                limit: Some(1000),
            })
            .await
            .unwrap();
        let bytes = serde_json::to_vec(&page).unwrap().len();
        assert!(bytes <= MAX_PAGE_BYTES, "a page of {bytes} bytes");
        seen += page.items.len();
        pages += 1;
        match page.last_reference {
            Some(r) => after = Some(r),
            None => break,
        }
    }
    assert_eq!(seen, made, "paging reaches every item");
    assert!(pages >= 2, "the budget cut the first page");

    running.stop().await.unwrap();
    db.drop_db().await;
}
