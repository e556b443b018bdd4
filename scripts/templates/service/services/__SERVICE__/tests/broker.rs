//! The service on the real RabbitMQ (`worker_kit::testing::BrokerFixture`): a vhost of its
//! own for the test, the service's Runner in-process on it, and a leak check on the way out.
//!
//! Needs RabbitMQ with `rabbitmqctl` on its host and the service's database, which
//! `scripts/pj dev` and `scripts/pj test` sync from `models/__SERVICE__/`
//! (`scripts/pj manage sync --service __SERVICE__ --noprompt` does it alone).

use std::time::{Duration, Instant};

use stubs::__SERVICE__::{AddNote, Hello};
use worker_kit::db::{Client, DbConfig, Executor};
use worker_kit::queue::QueuePublisher;
use worker_kit::testing::BrokerFixture;

#[tokio::test]
async fn answers_hello_and_stores_a_note_sent_through_the_broker() {
    let db = Client::new(
        "main",
        &DbConfig::from_env("main", __SERVICE__::SERVICE).unwrap(),
    )
    .unwrap();
    // Fail at once, saying what to do, rather than wait for the Runner's database timeout.
    drop(db.connection().await.expect(
        "the __SERVICE__ database: create it with scripts/pj manage sync --service __SERVICE__ --noprompt",
    ));
    let mut fx = BrokerFixture::from_env().unwrap();
    fx.start(__SERVICE__::SERVICE, __SERVICE__::build)
        .await
        .unwrap();

    let reply = fx
        .client()
        .await
        .unwrap()
        .call(&Hello {
            name: Some("broker".into()),
        })
        .await
        .unwrap();
    assert_eq!(reply.message, "Hello, broker! (__SERVICE__)");

    // A note through the work queue: the test waits, with a deadline, for its row.
    let text = format!("note {}", uuid::Uuid::new_v4());
    let publisher = fx.setup("__SERVICE__-test-publisher").await.unwrap();
    QueuePublisher::new(&publisher.broker)
        .publish_task(&AddNote { text: text.clone() })
        .await
        .unwrap();
    publisher.broker.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let row = db
            .query_opt_row("SELECT id FROM notes WHERE text = $1", &[&text])
            .await
            .unwrap();
        if let Some(row) = row {
            break row.get::<_, i64>(0);
        }
        assert!(Instant::now() < deadline, "the note was not stored within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    db.execute("DELETE FROM notes WHERE id = $1", &[&stored])
        .await
        .unwrap();

    fx.finish().await.unwrap();
}
