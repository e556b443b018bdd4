//! Who may call what, through the real broker with real broker users: the caller a handler
//! sees, allow lists, anonymous requests under both settings, a forged `user_id`, and the
//! original caller of a retried work message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::users::BrokerUsers;
use e2e::{RawPeer, gzip, reply_json, unique, wait_until};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use worker_kit::access::{Anonymous, ORIGINAL_USER_HEADER};
use worker_kit::config::Config;
use worker_kit::queue::{PublishError, QueuePublisher, QueueWorker, parking_queue};
use worker_kit::rpc::{CallError, CallOptions, RpcClient, RpcWorker};
use worker_kit::testing::ForgeUserId;
use worker_kit::{Broker, ErrorReply, Meta, Payload, Runner, State};

/// Answers with the caller the handler was given.
async fn whoami(meta: Meta) -> Result<serde_json::Value, ErrorReply> {
    Ok(serde_json::json!({
        "user": meta.caller.user,
        "verified": meta.caller.verified,
    }))
}

async fn connect(url: &str, name: &str) -> Broker {
    Broker::connect(url, name, Duration::from_secs(10))
        .await
        .expect("the test's broker user logs in")
}

/// A Runner logged in with `url`, with `tune` applied to the tests' settings.
async fn runner_as(url: &str, tune: impl FnOnce(&mut Config)) -> Runner {
    let mut config = e2e::config();
    config.amqp_url = url.parse().unwrap();
    tune(&mut config);
    Runner::new("identity", Arc::new(config), connect(url, "identity").await)
}

async fn client_as(url: &str) -> RpcClient {
    RpcClient::new(&connect(url, "caller").await, &e2e::config())
        .await
        .expect("client")
}

async fn call(client: &RpcClient, route: &str) -> Result<serde_json::Value, CallError> {
    client.call_route(route, &(), CallOptions::default()).await
}

fn forbidden_message(r: Result<serde_json::Value, CallError>) -> String {
    match r {
        Err(CallError::Remote { error, .. }) if error.error_type == "Forbidden" => error.message,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

/// An anonymous request (no `user_id`, as the Python seed sends) and its reply.
async fn anonymous_request(route: &str) -> serde_json::Value {
    let mut peer = RawPeer::connect().await;
    reply_json(
        &peer
            .request(route, &gzip(br#"{"data": null}"#), "anonymous-1")
            .await,
    )
}

#[tokio::test]
async fn an_allowed_service_succeeds_and_reads_itself_as_the_caller_others_get_forbidden() {
    let mut users = BrokerUsers::new("allow");
    let server = users.add("server");
    let billing = users.add("billing-eu");
    let catalog = users.add("catalog");
    let listed = unique("id.listed");
    let open = unique("id.open");
    let overridden = unique("id.overridden");
    let billing_user = users.name("billing-eu");
    let catalog_user = users.name("catalog");
    let worker = RpcWorker::new()
        .route(&listed, whoami)
        .allow(&listed, [users.name("billing-*")])
        .route(&open, whoami)
        .route(&overridden, whoami)
        .allow(&overridden, [billing_user.clone()]);
    let running = e2e::start(
        runner_as(&server, |c| {
            // The deployment's list replaces the registered one.
            c.route_allow = vec![(
                overridden.clone(),
                worker_kit::access::AllowList::new([catalog_user.clone()]),
            )];
        })
        .await
        .register_worker(worker),
    )
    .await;

    let as_billing = client_as(&billing).await;
    let as_catalog = client_as(&catalog).await;
    assert_eq!(
        call(&as_billing, &listed).await.unwrap(),
        serde_json::json!({"user": billing_user, "verified": true}),
        "the handler reads the broker-verified caller"
    );
    let refused = forbidden_message(call(&as_catalog, &listed).await);
    assert!(
        refused.contains(&catalog_user) && refused.contains("allow list"),
        "{refused}"
    );
    assert_eq!(
        call(&as_catalog, &open).await.unwrap(),
        serde_json::json!({"user": catalog_user, "verified": true})
    );
    // The registered list named billing; the deployment's names catalog only.
    assert_eq!(
        call(&as_catalog, &overridden).await.unwrap()["user"],
        serde_json::json!(catalog_user)
    );
    forbidden_message(call(&as_billing, &overridden).await);
    // A list never admits a request that names nobody, whatever RPC_ANONYMOUS says.
    let anonymous = anonymous_request(&listed).await;
    assert_eq!(anonymous["success"], false);
    assert_eq!(anonymous["error"]["type"], "Forbidden");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn anonymous_requests_under_both_settings() {
    let mut users = BrokerUsers::new("anon");
    let server = users.add("server");
    let caller = users.add("caller");
    for setting in [Anonymous::Allow, Anonymous::Deny] {
        let route = unique("id.anon");
        let running = e2e::start(
            runner_as(&server, |c| c.rpc_anonymous = setting)
                .await
                .register_worker(RpcWorker::new().route(&route, whoami)),
        )
        .await;
        let reply = anonymous_request(&route).await;
        match setting {
            Anonymous::Allow => assert_eq!(
                reply,
                serde_json::json!({"success": true, "data": {"user": null, "verified": false}}),
                "the default admits the Python seed, which sends no user_id"
            ),
            Anonymous::Deny => {
                assert_eq!(reply["error"]["type"], "Forbidden", "{reply}");
                assert!(
                    reply["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("RPC_ANONYMOUS=deny"),
                    "{reply}"
                );
            }
        }
        // An identified caller is admitted either way.
        let identified = call(&client_as(&caller).await, &route).await.unwrap();
        assert_eq!(identified["user"], serde_json::json!(users.name("caller")));
        running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_forged_user_id_is_refused_clearly_and_promptly_and_the_client_recovers() {
    let mut users = BrokerUsers::new("forge");
    let server = users.add("server");
    let mallory = users.add("mallory");
    let route = unique("id.forge");
    let running = e2e::start(
        runner_as(&server, |_| {})
            .await
            .register_worker(RpcWorker::new().route(&route, whoami)),
    )
    .await;
    let honest = client_as(&mallory).await;
    let forger = honest.clone().forging_user_id(&users.name("server"));
    let options = CallOptions {
        timeout: Some(Duration::from_secs(20)),
        ..CallOptions::default()
    };
    for attempt in 0..2 {
        let started = Instant::now();
        let refused = forger
            .call_route::<_, serde_json::Value>(&route, &(), options)
            .await;
        let elapsed = started.elapsed();
        eprintln!("attempt {attempt}: the forged call was refused after {elapsed:?}");
        match refused {
            Err(e @ CallError::UserIdRefused { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("user_id does not match") && text.contains("authenticated user"),
                    "{text}"
                );
            }
            other => panic!("attempt {attempt}: expected UserIdRefused, got {other:?}"),
        }
        assert!(
            elapsed < Duration::from_secs(5),
            "the refusal is reported at once, not at the call's 20 s timeout: {elapsed:?}"
        );
        // The same client (its channel was closed by the broker) calls again as itself.
        let ok = honest
            .call_route::<_, serde_json::Value>(&route, &(), options)
            .await
            .expect("the client re-opened its channel");
        assert_eq!(ok["user"], serde_json::json!(users.name("mallory")));
    }

    let publisher = QueuePublisher::new(&connect(&mallory, "publisher").await);
    let work = unique("id.forge-work");
    RawPeer::connect().await.declare_work_queue(&work).await;
    let forged = publisher
        .clone()
        .forging_user_id(&users.name("server"))
        .publish(&work, "x")
        .await;
    assert!(
        matches!(forged, Err(PublishError::UserIdRefused { .. })),
        "{forged:?}"
    );
    publisher
        .publish(&work, "y")
        .await
        .expect("the publisher opens a new channel");
    let peer = RawPeer::connect().await;
    assert_eq!(peer.ready_count(&work).await, 1, "only the honest message");
    peer.delete(&[&work]).await;
    running.stop().await.unwrap();
}

/// One attempt as the work handler saw it: payload, retry count, caller.
type Attempt = (String, u32, Option<String>);

/// Every attempt the work handler saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Attempt>>>);

/// Fails every message's first attempt, so that it comes back as the service's own copy.
async fn fail_once(
    State(seen): State<Seen>,
    meta: Meta,
    Payload(text): Payload<String>,
) -> Result<(), ErrorReply> {
    seen.0
        .lock()
        .await
        .push((text, meta.retry_count, meta.caller.user.clone()));
    if meta.retry_count == 0 {
        return Err(ErrorReply::unavailable("first attempts fail"));
    }
    Ok(())
}

fn text_header(props: &BasicProperties, name: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// Publishes `text` to `route` as the user of `url`, with `headers` (a raw peer: the kit's
/// publisher sets no headers of the caller's choosing).
async fn publish_raw(url: &str, user: &str, route: &str, text: &str, headers: FieldTable) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .basic_publish(
            "".into(),
            route.into(),
            BasicPublishOptions::default(),
            &gzip(serde_json::json!({ "data": text }).to_string().as_bytes()),
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_user_id(ShortString::from(user))
                .with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_retried_work_message_is_authorized_as_its_original_caller() {
    let mut users = BrokerUsers::new("retry");
    let server = users.add("server");
    let billing = users.add("billing");
    let catalog = users.add("catalog");
    let billing_user = users.name("billing");
    let catalog_user = users.name("catalog");
    let route = unique("id.retry");
    let seen = Seen::default();
    let running = e2e::start(
        runner_as(&server, |_| {}).await.register_worker(
            QueueWorker::new()
                .route(&route, fail_once)
                .allow(&route, [billing_user.clone()])
                .with_state(seen.clone()),
        ),
    )
    .await;

    QueuePublisher::new(&connect(&billing, "billing").await)
        .publish(&route, "from billing")
        .await
        .unwrap();
    // Catalog is not on the list, and the header it writes itself is not believed.
    let mut claims = FieldTable::default();
    claims.insert(
        ORIGINAL_USER_HEADER.into(),
        AMQPValue::LongString(billing_user.as_str().into()),
    );
    claims.insert("x-retry-count".into(), AMQPValue::LongLongInt(1));
    publish_raw(&catalog, &catalog_user, &route, "from catalog", claims).await;

    wait_until(
        Duration::from_secs(10),
        "billing's message handled twice",
        || {
            let seen = seen.clone();
            async move { seen.0.lock().await.len() >= 2 }
        },
    )
    .await;
    let peer = RawPeer::connect().await;
    let dead = parking_queue(&route);
    wait_until(Duration::from_secs(10), "catalog's message parked", || {
        let peer = &peer;
        let dead = dead.clone();
        async move { peer.ready_count(&dead).await == 1 }
    })
    .await;
    assert_eq!(
        *seen.0.lock().await,
        [
            ("from billing".to_owned(), 0, Some(billing_user.clone())),
            // The retry copy is the service's own message; its caller is still billing's,
            // and billing is still on the list.
            ("from billing".to_owned(), 1, Some(billing_user.clone())),
        ],
        "catalog's message never reached the handler"
    );
    let parked = peer.get(&dead).await.expect("the parked message");
    let props = &parked.delivery.properties;
    assert_eq!(
        text_header(props, "x-error-type").as_deref(),
        Some("Forbidden")
    );
    assert_eq!(
        props.user_id().as_ref().map(ShortString::as_str),
        Some(users.name("server").as_str()),
        "the parked copy is published by the service itself"
    );
    assert_eq!(
        text_header(props, ORIGINAL_USER_HEADER),
        Some(catalog_user.clone()),
        "the copy names the real sender, not the one it claimed"
    );
    assert_eq!(peer.ready_count(&route).await, 0, "nothing requeued");
    running.stop().await.unwrap();
    peer.delete(&[&route, &dead]).await;
}
