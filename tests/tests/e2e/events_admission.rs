//! Issue 25.4: an event subscription admits an event only from the broker user that owns its
//! name (the name's first segment), or from those `ROUTE_ALLOW` lists for the subscribed name;
//! a forged event from another user is parked as `Forbidden` without running the handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::users::BrokerUsers;
use e2e::{RawPeer, unique, wait_until};
use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use worker_kit::access::AllowList;
use worker_kit::config::EventPublishers;
use worker_kit::events::{EventWorker, subscription_queue};
use worker_kit::queue::parking_queue;
use worker_kit::{ErrorReply, Payload, Runner, State};

async fn count(
    State(n): State<Arc<AtomicUsize>>,
    Payload(_): Payload<serde_json::Value>,
) -> Result<(), ErrorReply> {
    n.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Publishes the event `name` to `exchange` as the user of `url` (its `user_id`, which the
/// broker checks).
async fn publish_as(url: &str, user: &str, exchange: &str, name: &str) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("the test user connects");
    let channel = conn.create_channel().await.unwrap();
    let props = BasicProperties::default()
        .with_user_id(user.into())
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_type(name.into())
        .with_delivery_mode(2);
    channel
        .basic_publish(
            exchange.into(),
            name.into(),
            BasicPublishOptions::default(),
            br#"{"data": {"id": 1}}"#,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
}

async fn run_subscriber(
    service: &'static str,
    exchange: &str,
    name: &str,
    tune: impl FnOnce(&mut worker_kit::Config),
) -> (worker_kit::runner::Running, Arc<AtomicUsize>) {
    let handled = Arc::new(AtomicUsize::new(0));
    let mut config = e2e::config();
    config.event_publishers = EventPublishers::Owner;
    tune(&mut config);
    let running = e2e::start(
        Runner::new(service, Arc::new(config), e2e::broker(service).await).register_worker(
            EventWorker::new()
                .exchange(exchange)
                .pattern(name, count)
                .with_state(handled.clone()),
        ),
    )
    .await;
    (running, handled)
}

#[tokio::test]
async fn events_are_admitted_only_from_the_owner_of_their_name() {
    let mut users = BrokerUsers::new("evt");
    let owner_url = users.add("owner");
    let intruder_url = users.add("intruder");
    let (owner, intruder) = (users.name("owner"), users.name("intruder"));
    let name = format!("{owner}.item.created");
    let exchange = unique("events-admission");
    let service: &'static str = Box::leak(unique("evt-sub").into_boxed_str());
    let (running, handled) = run_subscriber(service, &exchange, &name, |_| {}).await;
    let queue = subscription_queue(service, &name);
    let dead = parking_queue(&queue);
    let peer = RawPeer::connect().await;

    // A copy of the owner's event, published by another user.
    publish_as(&intruder_url, &intruder, &exchange, &name).await;
    publish_as(&owner_url, &owner, &exchange, &name).await;
    wait_until(
        Duration::from_secs(15),
        "the forged event is parked",
        || {
            let (peer, dead) = (&peer, dead.clone());
            async move { peer.exists(&dead).await && peer.ready_count(&dead).await == 1 }
        },
    )
    .await;
    wait_until(
        Duration::from_secs(15),
        "the owner's event is handled",
        || {
            let n = handled.load(Ordering::SeqCst);
            async move { n == 1 }
        },
    )
    .await;
    let parked = peer.get(&dead).await.expect("the parked event");
    let error_type = parked
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-error-type").cloned());
    assert_eq!(
        error_type,
        Some(AMQPValue::LongString("Forbidden".into())),
        "parked as Forbidden"
    );
    running.stop().await.unwrap();
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "only the owner's event ran"
    );
    assert_eq!(peer.ready_count(&queue).await, 0);

    // ROUTE_ALLOW keyed by the subscribed name replaces the owner.
    let (running, handled) = run_subscriber(service, &exchange, &name, |c| {
        c.route_allow = vec![(name.clone(), AllowList::new([intruder.clone()]))];
    })
    .await;
    publish_as(&intruder_url, &intruder, &exchange, &name).await;
    publish_as(&owner_url, &owner, &exchange, &name).await;
    wait_until(
        Duration::from_secs(15),
        "the listed user's event is handled",
        || {
            let n = handled.load(Ordering::SeqCst);
            async move { n == 1 }
        },
    )
    .await;
    wait_until(
        Duration::from_secs(15),
        "the owner's event is parked",
        || {
            let (peer, dead) = (&peer, dead.clone());
            async move { peer.ready_count(&dead).await == 1 }
        },
    )
    .await;
    running.stop().await.unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    peer.delete(&[&queue, &dead]).await;
    let _ = peer
        .channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
}
