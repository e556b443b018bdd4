use std::time::{Duration, Instant};

use e2e::cluster::Cluster;
use e2e::unique;

use crate::harness::{self, RpcLoad, SLACK};

/// RPC while a node stops: every call answers or fails fast and clearly
/// (`ConnectionLost`, `NoRoute` or `Timeout`, within its deadline); none hangs; after the
/// node is back every call answers.
#[tokio::test]
async fn rpc_calls_end_in_time_while_a_node_stops() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let _serial = crate::serial().await;
    let route = unique("cluster.rpc");
    let servers = harness::rpc_servers(&cluster, &route, 2).await;
    let timeout = Duration::from_secs(2);
    let load = RpcLoad::start(&cluster, &route, 8, timeout).await;
    e2e::wait_until(
        Duration::from_secs(30),
        "calls answered before the failure",
        || {
            let load = &load;
            async move { load.outcomes().await.ok >= 200 }
        },
    )
    .await;

    // The node the callers are connected to: their pending calls lose their connection.
    let caller_node = cluster.index_of(&load.node());
    let answered = load.outcomes().await.ok;
    let stopping = Instant::now();
    let down = cluster.stop_node(caller_node).await;
    e2e::wait_until(
        Duration::from_secs(30),
        "calls answered again during the failure",
        || {
            let load = &load;
            async move { load.outcomes().await.ok >= answered + 200 }
        },
    )
    .await;
    let answering_again = stopping.elapsed();
    down.start().await;
    cluster.wait_healthy().await;
    let outcomes = load.finish().await;
    eprintln!(
        "node {} stopped: calls answered again after {answering_again:?}; outcomes {outcomes:?}",
        caller_node + 1
    );
    assert!(
        outcomes.slowest <= timeout + SLACK,
        "every call ended within its deadline: {outcomes:?}"
    );
    harness::all_answer(&cluster, &route, 200, Duration::from_secs(30)).await;
    for s in servers {
        s.stop().await.unwrap();
    }
}
