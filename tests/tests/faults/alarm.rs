//! A resource alarm blocks every connection that publishes, and a blocked connection's acks
//! wait with its publishes. Work-queue consumers ack on a connection of their own that never
//! publishes, so they keep settling what they hold while the process's publishing
//! connection is blocked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::{RawPeer, unique, wait_until};
use tokio::sync::Semaphore;
use worker_kit::queue::{QueuePublisher, QueueWorker};
use worker_kit::{ErrorReply, Payload, Runner, State};

const HELD: usize = 20;

async fn rabbitmqctl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl is installed (the test raises a disk alarm on the local RabbitMQ)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A disk alarm on the local broker (a free-disk limit above any disk), lifted again on
/// drop, also when the test fails.
struct DiskAlarm {
    limit_before: String,
}

impl DiskAlarm {
    async fn raise() -> Self {
        let limit_before = rabbitmqctl(&["eval", "rabbit_disk_monitor:get_disk_free_limit()."])
            .await
            .trim()
            .to_owned();
        assert!(
            limit_before.chars().all(|c| c.is_ascii_digit()),
            "the disk free limit in bytes, got {limit_before:?}"
        );
        rabbitmqctl(&["set_disk_free_limit", "1000000GB"]).await;
        let alarm = Self { limit_before };
        wait_until(Duration::from_secs(30), "the disk alarm is on", || async {
            rabbitmqctl(&["eval", "rabbit_alarm:get_alarms()."])
                .await
                .contains("disk")
        })
        .await;
        alarm
    }
}

impl Drop for DiskAlarm {
    fn drop(&mut self) {
        let lifted = std::process::Command::new("rabbitmqctl")
            .args(["set_disk_free_limit", &self.limit_before])
            .status();
        assert!(
            lifted.is_ok_and(|s| s.success()),
            "lift the disk alarm: rabbitmqctl set_disk_free_limit {}",
            self.limit_before
        );
    }
}

async fn unacked(queue: &str) -> Option<u64> {
    rabbitmqctl(&[
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "messages_unacknowledged",
    ])
    .await
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .find(|(name, _)| *name == queue)
    .and_then(|(_, n)| n.trim().parse().ok())
}

/// The broker's connections: (client-given name, state such as `running` or `blocked`).
async fn connection_states() -> Vec<(String, String)> {
    rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "client_properties",
        "state",
    ])
    .await
    .lines()
    .filter_map(|l| {
        let (props, state) = l.rsplit_once('\t')?;
        let name = props
            .split("{\"connection_name\",\"")
            .nth(1)?
            .split('"')
            .next()?;
        Some((name.to_owned(), state.trim().to_owned()))
    })
    .collect()
}

#[derive(Clone)]
struct Gate {
    open: Arc<Semaphore>,
    entered: Arc<AtomicUsize>,
}

async fn held(State(gate): State<Gate>, Payload(_): Payload<u32>) -> Result<(), ErrorReply> {
    gate.entered.fetch_add(1, Ordering::SeqCst);
    gate.open.acquire().await.expect("gate").forget();
    Ok(())
}

#[tokio::test]
async fn work_queue_consumers_ack_while_an_alarm_blocks_publishing() {
    let _serial = crate::serial().await;
    let route = unique("alarm");
    let peer = RawPeer::connect().await;
    peer.declare_work_queue(&route).await;
    let before = QueuePublisher::new(&e2e::broker("alarm-producer").await);
    for n in 0..u32::try_from(HELD).unwrap() {
        before.publish(&route, &n).await.unwrap();
    }

    // One process: a work-queue worker holding every message, and a publisher.
    let gate = Gate {
        open: Arc::new(Semaphore::new(0)),
        entered: Arc::new(AtomicUsize::new(0)),
    };
    let broker = e2e::broker("alarm-service").await;
    let running = Runner::new("alarm-service", Arc::new(e2e::config()), broker.clone())
        .register_worker(
            QueueWorker::new()
                .route(&route, held)
                .prefetch(u16::try_from(HELD).unwrap())
                .with_state(gate.clone()),
        )
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(30), "every message is held", || {
        let gate = &gate;
        async move { gate.entered.load(Ordering::SeqCst) == HELD }
    })
    .await;

    let alarm = DiskAlarm::raise().await;
    // The process publishes during the alarm: its publishing connection is blocked.
    let blocked = tokio::spawn({
        let publisher = QueuePublisher::new(&broker);
        let route = route.clone();
        async move { publisher.publish(&route, &u32::MAX).await }
    });
    wait_until(
        Duration::from_secs(30),
        "the broker blocks the process's publishing connection",
        || async {
            connection_states()
                .await
                .iter()
                .any(|(name, state)| name == "alarm-service" && state == "blocked")
        },
    )
    .await;
    // The handlers end; their acks must reach the broker while the alarm lasts.
    gate.open.add_permits(HELD);
    wait_until(
        Duration::from_secs(30),
        "the held messages are acknowledged during the alarm",
        || {
            let route = &route;
            async move { unacked(route).await == Some(0) }
        },
    )
    .await;
    assert!(
        !blocked.is_finished(),
        "the publish waits while the alarm lasts (else the alarm did not block anything)"
    );
    let (ready, _) = peer.counts(&route).await;
    assert_eq!(ready, 0, "the held messages are gone, not requeued");

    drop(alarm);
    tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("the blocked publish completes once the alarm is lifted")
        .unwrap()
        .unwrap();
    gate.open.add_permits(1);
    running.stop().await.unwrap();
    peer.delete(&[&route, &worker_kit::queue::parking_queue(&route)])
        .await;
}
