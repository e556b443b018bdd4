//! Scaling benchmark (not a test) on the local 3-node cluster: how fast 1, 2 and 3 replicas
//! work off one work-queue route, quorum and classic, and one route split over three quorum
//! queues led by different nodes. docs/scaling.md quotes its output.
//!
//! ```text
//! . scripts/lib/cluster.sh && cluster_start      # exports CLUSTER_AMQP_URLS
//! cargo build --release -p e2e --bin cluster-bench
//! target/release/cluster-bench --messages 20000
//! ```
//!
//! Each case publishes `--messages` persistent messages (confirmed) first, then starts the
//! replicas (each a Runner with a connection of its own, in this process) and times them
//! until every message is acknowledged. The handler does no work: the figures are the
//! ceiling of the kit and the broker, not of a real handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use worker_kit::queue::{QueuePublisher, QueueType, QueueWorker};
use worker_kit::{Broker, ErrorReply, Payload, Runner, State};

/// Work-queue throughput of 1-3 replicas on the cluster.
#[derive(Parser)]
struct Opts {
    /// Messages per case.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Prefetch per replica.
    #[arg(long, default_value_t = 64)]
    prefetch: u16,
    /// Rounds of every case (the best and the median are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    kind: QueueType,
    replicas: usize,
    /// Queues the route is split into, each led by a different node.
    queues: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "quorum, 1 queue, 1 replica",
        kind: QueueType::Quorum,
        replicas: 1,
        queues: 1,
    },
    Case {
        name: "quorum, 1 queue, 2 replicas",
        kind: QueueType::Quorum,
        replicas: 2,
        queues: 1,
    },
    Case {
        name: "quorum, 1 queue, 3 replicas",
        kind: QueueType::Quorum,
        replicas: 3,
        queues: 1,
    },
    Case {
        name: "quorum, 3 queues, 3 replicas",
        kind: QueueType::Quorum,
        replicas: 3,
        queues: 3,
    },
    Case {
        name: "classic, 1 queue, 1 replica",
        kind: QueueType::Classic,
        replicas: 1,
        queues: 1,
    },
    Case {
        name: "classic, 1 queue, 3 replicas",
        kind: QueueType::Classic,
        replicas: 3,
        queues: 1,
    },
];

async fn count(
    State(n): State<Arc<AtomicU64>>,
    Payload(_): Payload<u64>,
) -> Result<(), ErrorReply> {
    n.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn config(url: &str, case: Case, prefetch: u16) -> Arc<worker_kit::Config> {
    let mut c = worker_kit::Config::default();
    c.amqp_url = url.parse().expect("the cluster's URL list parses");
    c.queue_type = case.kind;
    c.prefetch = prefetch;
    Arc::new(c)
}

fn worker(routes: &[String], n: Arc<AtomicU64>) -> QueueWorker {
    routes
        .iter()
        .fold(QueueWorker::new(), |w, r| w.route(r, count))
        .with_state(n)
}

/// One timed run: messages per second.
async fn run(urls: &[String], case: Case, opts: &Opts, round: usize) -> anyhow::Result<f64> {
    let all = urls.join(",");
    let routes: Vec<String> = (0..case.queues)
        .map(|q| {
            format!(
                "bench.cluster.{}.{round}.{q}",
                uuid::Uuid::new_v4().simple()
            )
        })
        .collect();
    // Declare each queue through a different node: a quorum queue's leader is the node
    // the declaring client is on, so the split queues get a leader each.
    for (q, route) in routes.iter().enumerate() {
        let url = &urls[q % urls.len()];
        let broker = Broker::connect(url, "bench-declare", Duration::from_secs(10)).await?;
        let running = Runner::new(
            "bench-declare",
            config(url, case, opts.prefetch),
            broker.clone(),
        )
        .register_worker(worker(
            std::slice::from_ref(route),
            Arc::new(AtomicU64::new(0)),
        ))
        .start()
        .await?;
        running.stop().await?;
    }
    let publisher_broker =
        Broker::connect(&all, "bench-publisher", Duration::from_secs(10)).await?;
    let publisher = QueuePublisher::new(&publisher_broker);
    let routes_ref = &routes;
    futures::stream::iter(0..opts.messages)
        .map(|i| {
            let publisher = publisher.clone();
            async move {
                let route = &routes_ref[(i as usize) % routes_ref.len()];
                publisher.publish(route, &i).await
            }
        })
        .buffer_unordered(256)
        .for_each(|r| async move { r.expect("published") })
        .await;
    publisher_broker.close().await;

    let handled = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut running = Vec::new();
    for _ in 0..case.replicas {
        let broker = Broker::connect(&all, "bench-replica", Duration::from_secs(10)).await?;
        running.push(
            Runner::new("bench-replica", config(&all, case, opts.prefetch), broker)
                .register_worker(worker(&routes, handled.clone()))
                .start()
                .await?,
        );
    }
    while handled.load(Ordering::Relaxed) < opts.messages {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    for r in running {
        r.stop().await?;
    }
    // Clean up through one node.
    let conn = lapin::Connection::connect(&urls[0], Default::default()).await?;
    let ch = conn.create_channel().await?;
    for route in &routes {
        for q in [route.clone(), worker_kit::queue::parking_queue(route)] {
            ch.queue_delete(q.as_str().into(), Default::default())
                .await?;
        }
    }
    conn.close(200, "done".into()).await?;
    Ok(opts.messages as f64 / took.as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let urls: Vec<String> = std::env::var("CLUSTER_AMQP_URLS")
        .map_err(|_| anyhow::anyhow!("CLUSTER_AMQP_URLS is not set: start the cluster (scripts/lib/cluster.sh: cluster_start)"))?
        .split(',')
        .map(str::to_owned)
        .collect();
    println!(
        "{} messages per case, prefetch {}, {} rounds, {} nodes, handler does no work",
        opts.messages,
        opts.prefetch,
        opts.rounds,
        urls.len()
    );
    println!("| case | best msg/s | median msg/s |");
    println!("| --- | ---: | ---: |");
    for case in CASES {
        let mut rates = Vec::with_capacity(opts.rounds);
        for round in 0..opts.rounds {
            rates.push(run(&urls, *case, &opts, round).await?);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.0} | {:.0} |",
            case.name,
            rates[rates.len() - 1],
            rates[rates.len() / 2]
        );
    }
    Ok(())
}
