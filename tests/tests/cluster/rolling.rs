use std::time::{Duration, Instant};

use e2e::cluster::Cluster;
use e2e::pg::TestDb;
use e2e::{handled, unique, wait_until};

use crate::harness::{self, RpcLoad, SLACK, recorded};

const MESSAGES: i64 = 3_000;
/// Messages published while each node restarts.
const PER_NODE: i64 = MESSAGES / 3;

/// A rolling restart of the three nodes, one after the other, under RPC and work-queue
/// load: every message recorded (none lost, redeliveries absorbed), every call answered or
/// failed fast and clearly within its deadline, and after the last node is back every
/// call answers.
#[tokio::test]
async fn rolling_restart_under_load() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let _serial = crate::serial().await;
    let db = TestDb::create("cluster_rolling", handled::SCHEMA).await;
    let pg = db.client().await;
    let route = unique("cluster.rolling");
    let rpc_route = unique("cluster.rolling.rpc");
    let replicas =
        harness::replicas(&cluster, &route, &db.dsn, 3, 4, Duration::from_millis(50)).await;
    let servers = harness::rpc_servers(&cluster, &rpc_route, 2).await;
    let timeout = Duration::from_secs(2);
    let load = RpcLoad::start(&cluster, &rpc_route, 4, timeout).await;
    let publisher = harness::publisher(&cluster).await;
    let started = Instant::now();
    let mut repeated = 0;
    for node in 0..cluster.len() {
        // A third of the messages for each restart, so that every node stops with work
        // queued and in flight.
        let first = node as i64 * PER_NODE;
        let producer = tokio::spawn(harness::produce(
            publisher.clone(),
            route.clone(),
            first..first + PER_NODE,
        ));
        wait_until(Duration::from_secs(60), "work in flight", || {
            let pg = &pg;
            async move { recorded(pg).await.0 > first }
        })
        .await;
        let (handled_before, _) = recorded(&pg).await;
        let answered_before = load.outcomes().await.ok;
        let down = cluster.stop_node(node).await;
        // Work goes on with the node down: messages handled, calls answered.
        wait_until(
            Duration::from_secs(30),
            "messages handled and calls answered with a node down",
            || {
                let (pg, load) = (&pg, &load);
                async move {
                    recorded(pg).await.0 > handled_before
                        && load.outcomes().await.ok > answered_before + 20
                }
            },
        )
        .await;
        down.start().await;
        cluster.wait_healthy().await;
        repeated += producer.await.expect("producer");
        eprintln!(
            "node {} restarted at {:?}: {} recorded, calls {:?}",
            node + 1,
            started.elapsed(),
            recorded(&pg).await.0,
            load.outcomes().await
        );
    }
    wait_until(Duration::from_secs(120), "all 3,000 recorded", || {
        let pg = &pg;
        async move { recorded(pg).await.0 == MESSAGES }
    })
    .await;
    let outcomes = load.finish().await;
    harness::all_answer(&cluster, &rpc_route, 200, Duration::from_secs(30)).await;
    let per_replica: Vec<u64> = replicas.iter().map(harness::Replica::handled).collect();
    for r in replicas {
        r.running.stop().await.unwrap();
    }
    for s in servers {
        s.stop().await.unwrap();
    }
    let (ids, runs) = recorded(&pg).await;
    eprintln!(
        "rolling restart in {:?}: {ids} ids, {runs} handler runs, {repeated} publishes repeated, per replica {per_replica:?}; calls {outcomes:?}",
        started.elapsed()
    );
    assert_eq!(ids, MESSAGES, "no message lost");
    assert!(
        outcomes.slowest <= timeout + SLACK,
        "every call ended within its deadline: {outcomes:?}"
    );
    drop(pg);
    db.drop_db().await;
}
