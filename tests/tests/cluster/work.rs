use std::time::{Duration, Instant};

use e2e::cluster::Cluster;
use e2e::pg::TestDb;
use e2e::{handled, unique, wait_until};
use worker_kit::queue::parking_queue;

use crate::harness::{self, recorded};

const MESSAGES: i64 = 3_000;

/// Deletes `route` and its parking queue through node `node`.
async fn delete_queues(cluster: &Cluster, node: usize, route: &str) {
    let conn = lapin::Connection::connect(cluster.node_url(node), Default::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    for q in [route.to_owned(), parking_queue(route)] {
        let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
    }
    let _ = conn.close(200, "ok".into()).await;
}

/// Ready messages in `queue`, asked through node `node`.
async fn ready(cluster: &Cluster, node: usize, queue: &str) -> u32 {
    let conn = lapin::Connection::connect(cluster.node_url(node), Default::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let n = ch
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .map(|q| q.message_count())
        .unwrap_or_else(|e| panic!("{queue}: {e}"));
    let _ = conn.close(200, "ok".into()).await;
    n
}

/// Messages in `queue` as node `node` reports them, ready and unacknowledged alike.
fn in_queue(cluster: &Cluster, node: usize, queue: &str) -> u64 {
    let out = cluster.ctl(
        node,
        &[
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages",
        ],
    );
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(name, _)| name.trim() == queue)
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{queue} not listed by node {node}: {out}"))
}

/// How long the replica on `broker` went without its node: from the first moment it is no
/// longer connected to node `node` to the first moment it is connected to another node and
/// has handled a message more. Checked every 10 ms, for at most 120 s.
async fn failover_gap(
    cluster: Cluster,
    broker: worker_kit::Broker,
    handled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    node: usize,
) -> Duration {
    use std::sync::atomic::Ordering;
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut lost: Option<Instant> = None;
    // Handled when the replica was first seen on its new node: a handler that was in
    // flight on the lost connection must not count as consuming again.
    let mut moved: Option<u64> = None;
    loop {
        let now = Instant::now();
        let connected = broker.connection_now().is_some();
        let elsewhere = connected && cluster.index_of(&broker.node()) != node;
        let on_its_node = connected && !elsewhere;
        if lost.is_none() && !on_its_node {
            lost = Some(now);
        }
        if let Some(at) = lost {
            match moved {
                None if elsewhere => moved = Some(handled.load(Ordering::Relaxed)),
                Some(then) if handled.load(Ordering::Relaxed) > then => return now - at,
                _ => {}
            }
        }
        assert!(
            now < give_up,
            "the replica did not move off node {}",
            node + 1
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Three replicas of a service consume one quorum work queue: 3,000 persistent messages,
/// each recorded exactly once in PostgreSQL, and every replica handled some.
#[tokio::test]
async fn three_replicas_share_a_quorum_queue() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let _serial = crate::serial().await;
    let db = TestDb::create("cluster_share", handled::SCHEMA).await;
    let pg = db.client().await;
    let route = unique("cluster.share");
    let replicas =
        harness::replicas(&cluster, &route, &db.dsn, 3, 8, Duration::from_millis(2)).await;
    let nodes: Vec<String> = replicas.iter().map(|r| r.broker.node()).collect();
    let started = Instant::now();
    let repeated = harness::produce(
        harness::publisher(&cluster).await,
        route.clone(),
        0..MESSAGES,
    )
    .await;
    assert_eq!(repeated, 0, "no publish failed with every node up");
    wait_until(Duration::from_secs(120), "all 3,000 recorded", || {
        let pg = &pg;
        async move { recorded(pg).await.0 == MESSAGES }
    })
    .await;
    let took = started.elapsed();
    let per_replica: Vec<u64> = replicas.iter().map(harness::Replica::handled).collect();
    for r in replicas {
        r.running.stop().await.unwrap();
    }
    eprintln!("3 replicas on {nodes:?}: {per_replica:?} messages each, {took:?} in all");
    assert_eq!(
        recorded(&pg).await,
        (MESSAGES, MESSAGES),
        "each message recorded once, and handled once"
    );
    assert!(
        per_replica.iter().all(|&n| n > 0),
        "every replica handled some: {per_replica:?}"
    );
    assert_eq!(per_replica.iter().sum::<u64>(), MESSAGES as u64);
    assert_eq!(ready(&cluster, 0, &route).await, 0, "none left");
    assert_eq!(
        ready(&cluster, 0, &parking_queue(&route)).await,
        0,
        "none parked"
    );
    delete_queues(&cluster, 0, &route).await;
    drop(pg);
    db.drop_db().await;
}

/// The node a replica is connected to stops in the middle of the load: that replica is on
/// another node and consuming again within 5 s, no message is lost, and the redelivered
/// ones are recorded once (the handler is idempotent).
#[tokio::test]
async fn replica_moves_to_another_node_when_its_node_stops() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let _serial = crate::serial().await;
    let db = TestDb::create("cluster_failover", handled::SCHEMA).await;
    let pg = db.client().await;
    let route = unique("cluster.failover");
    let replicas =
        harness::replicas(&cluster, &route, &db.dsn, 3, 4, Duration::from_millis(20)).await;
    let producer = tokio::spawn(harness::produce(
        harness::publisher(&cluster).await,
        route.clone(),
        0..MESSAGES,
    ));
    wait_until(Duration::from_secs(60), "600 messages handled", || {
        let pg = &pg;
        async move { recorded(pg).await.0 >= 600 }
    })
    .await;

    let victim = &replicas[0];
    let node = cluster.index_of(&victim.broker.node());
    // Measured from the moment the replica lost its node (stop_app itself takes seconds
    // on a loaded machine, closing connections first) to the moment it consumes on
    // another one.
    let gap = tokio::spawn(failover_gap(
        cluster.clone(),
        victim.broker.clone(),
        victim.handled.clone(),
        node,
    ));
    let stopping = Instant::now();
    let down = cluster.stop_node(node).await;
    let stop_took = stopping.elapsed();
    let gap = gap.await.expect("failover watch");
    eprintln!(
        "replica 1 moved from node {} to node {} and consumed again {gap:?} after losing its node (stop_app took {stop_took:?})",
        node + 1,
        cluster.index_of(&victim.broker.node()) + 1
    );
    assert!(
        gap <= Duration::from_secs(5),
        "the replica consumed from another node within 5 s of losing its own: {gap:?}"
    );
    let (handled_while_down, _) = recorded(&pg).await;
    assert!(
        handled_while_down < MESSAGES,
        "the stop came while work remained"
    );

    let repeated = producer.await.expect("producer");
    wait_until(Duration::from_secs(120), "all 3,000 recorded", || {
        let pg = &pg;
        async move { recorded(pg).await.0 == MESSAGES }
    })
    .await;
    // Every id is recorded, but a redelivered duplicate may still sit in a replica's
    // prefetch: stopping it then would hand that copy back to the queue. Wait until the
    // queue holds nothing, ready or unacknowledged, before stopping.
    let survivor = (node + 1) % cluster.len();
    wait_until(Duration::from_secs(60), "the route queue emptied", || {
        let (cluster, route) = (&cluster, &route);
        async move { in_queue(cluster, survivor, route) == 0 }
    })
    .await;
    let per_replica: Vec<u64> = replicas.iter().map(harness::Replica::handled).collect();
    for r in replicas {
        r.running.stop().await.unwrap();
    }
    down.start().await;
    cluster.wait_healthy().await;
    let (ids, runs) = recorded(&pg).await;
    eprintln!(
        "{ids} ids, {runs} handler runs ({} redelivered or republished), {repeated} publishes repeated, per replica {per_replica:?}",
        runs - ids
    );
    assert_eq!(ids, MESSAGES, "no message lost");
    assert_eq!(ready(&cluster, survivor, &route).await, 0, "none left");
    assert_eq!(
        ready(&cluster, survivor, &parking_queue(&route)).await,
        0,
        "none parked"
    );
    delete_queues(&cluster, survivor, &route).await;
    drop(pg);
    db.drop_db().await;
}
