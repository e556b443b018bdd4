//! Classic queues name their type (`x-queue-type: classic`), so that a broker whose default
//! queue type is quorum does not turn them into quorum queues, and that stays compatible
//! with the Python seed, which declares the same queues without arguments: both orders of
//! declaration, on the broker the tests run against.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use e2e::{RawPeer, unique, wait_until};
use lapin::types::{AMQPValue, FieldTable};
use worker_kit::queue::{QueuePublisher, QueueWorker, parking_queue};
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, Payload, State};

async fn count(
    State(seen): State<Arc<AtomicU32>>,
    Payload(_): Payload<String>,
) -> Result<(), ErrorReply> {
    seen.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

async fn echo(Payload(text): Payload<String>) -> Result<String, std::convert::Infallible> {
    Ok(text)
}

/// The arguments the broker holds for `queue`, as its management API (or, where that plugin
/// is off, `rabbitmqctl list_queues` on the broker's host) shows them.
fn broker_arguments(queue: &str) -> String {
    let vhost = "%2F";
    let url = format!("http://127.0.0.1:15672/api/queues/{vhost}/{queue}");
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("guest:guest")
    };
    match ureq::Agent::new_with_defaults()
        .get(&url)
        .header("Authorization", &format!("Basic {basic}"))
        .call()
    {
        Ok(mut r) => {
            let text = r.body_mut().read_to_string().expect("queue JSON");
            let body: serde_json::Value = serde_json::from_str(&text).expect("queue JSON");
            return body["arguments"].to_string();
        }
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        Err(e) => panic!("GET {url}: {e}"),
    }
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "-p", "/", "name", "arguments"])
        .output()
        .expect("rabbitmqctl (the management plugin is off)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split('\t').next() == Some(queue))
        .unwrap_or_else(|| panic!("{queue} not listed"))
        .to_owned()
}

fn dlx_only() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("rpc.dlx".into()),
    );
    args
}

#[tokio::test]
async fn work_queues_name_their_classic_type_in_either_order_with_python_declarations() {
    let seen = Arc::new(AtomicU32::new(0));
    // Python first: the kit's typed declaration is accepted against the untyped queue.
    let python_first = unique("qtype-py");
    let peer = RawPeer::connect().await;
    peer.declare_work_queue(&python_first).await;
    peer.declare_work_queue(&parking_queue(&python_first)).await;
    // The kit first: its queues name their type, and Python's declaration is accepted after.
    let kit_first = unique("qtype-kit");
    let running = e2e::start(
        e2e::runner("queue-type").await.register_worker(
            QueueWorker::new()
                .route(&python_first, count)
                .route(&kit_first, count)
                .with_state(seen.clone()),
        ),
    )
    .await;
    for queue in [kit_first.clone(), parking_queue(&kit_first)] {
        let args = broker_arguments(&queue);
        assert!(
            args.contains("x-queue-type") && args.contains("classic"),
            "{queue}: {args}"
        );
        // The Python seed's declaration: durable, no arguments.
        assert_eq!(
            peer.declare_error(&queue, true, FieldTable::default())
                .await,
            None,
            "{queue}"
        );
    }
    let publisher = QueuePublisher::new(&e2e::broker("publisher").await);
    publisher.publish(&python_first, "a").await.unwrap();
    publisher.publish(&kit_first, "b").await.unwrap();
    wait_until(Duration::from_secs(10), "both routes worked", || async {
        seen.load(Ordering::SeqCst) == 2
    })
    .await;
    running.stop().await.unwrap();
    peer.delete_routes(&[&python_first, &kit_first]).await;
}

#[tokio::test]
async fn a_new_rpc_queue_names_its_classic_type_and_python_still_declares_it() {
    let route = unique("qtype-rpc");
    let running = e2e::start(
        e2e::runner("queue-type-rpc")
            .await
            .register_worker(RpcWorker::new().route(&route, echo)),
    )
    .await;
    let args = broker_arguments(&route);
    assert!(
        args.contains("x-queue-type") && args.contains("classic"),
        "{args}"
    );
    assert!(args.contains("rpc.dlx"), "{args}");
    // The seed's declaration: transient, the dead-letter exchange only.
    let peer = RawPeer::connect().await;
    assert_eq!(peer.declare_error(&route, false, dlx_only()).await, None);
    running.stop().await.unwrap();
    peer.delete(&[&route]).await;
}
