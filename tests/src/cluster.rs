//! The local 3-node RabbitMQ cluster of the cluster test tier (scripts/lib/cluster.sh starts
//! it and exports `CLUSTER_AMQP_URLS`, `CLUSTER_NODES`, `CLUSTER_HOME`, `RABBITMQ_SBIN`), and
//! stopping and starting its nodes from a test.

use std::process::Command;
use std::time::Duration;

/// The cluster the tests run on.
#[derive(Debug, Clone)]
pub struct Cluster {
    urls: Vec<String>,
    nodes: Vec<String>,
    home: String,
    sbin: String,
}

/// Set by `scripts/test cluster`: a missing cluster is then a failure, not a skip.
pub const REQUIRED_VAR: &str = "CLUSTER_REQUIRED";

impl Cluster {
    /// The cluster from the environment. Without `CLUSTER_AMQP_URLS` the test is skipped
    /// (`None`, with a line saying so), unless `CLUSTER_REQUIRED` is set.
    ///
    /// # Panics
    ///
    /// When the cluster is required and not there, or the variables disagree.
    pub fn from_env() -> Option<Self> {
        let Ok(urls) = std::env::var("CLUSTER_AMQP_URLS") else {
            assert!(
                std::env::var_os(REQUIRED_VAR).is_none(),
                "{REQUIRED_VAR} is set but CLUSTER_AMQP_URLS is not: start the cluster (scripts/pj test cluster does)"
            );
            crate::skip::skipped(
                "no RabbitMQ cluster (CLUSTER_AMQP_URLS unset); `scripts/pj test cluster` starts one and runs these tests",
            );
            return None;
        };
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} must be set with CLUSTER_AMQP_URLS (scripts/lib/cluster.sh exports it)"
                )
            })
        };
        let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
        let nodes: Vec<String> = var("CLUSTER_NODES").split(',').map(str::to_owned).collect();
        assert_eq!(urls.len(), nodes.len(), "one URL per cluster node");
        Some(Self {
            urls,
            nodes,
            home: var("CLUSTER_HOME"),
            sbin: std::env::var("RABBITMQ_SBIN").unwrap_or_else(|_| "/usr/lib/rabbitmq/bin".into()),
        })
    }

    /// Every node's URL, comma-separated: the `AMQP_URL` list form.
    pub fn amqp_url(&self) -> String {
        self.urls.join(",")
    }

    /// Node `i`'s own URL.
    pub fn node_url(&self, i: usize) -> &str {
        &self.urls[i]
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never empty; for clippy.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The index of the node whose URL, password hidden, is `shown` (what
    /// [`Broker::node`](worker_kit::Broker::node) returns).
    ///
    /// # Panics
    ///
    /// When no node has that URL.
    pub fn index_of(&self, shown: &str) -> usize {
        self.urls
            .iter()
            .position(|u| worker_kit::redact::url(u) == shown)
            .unwrap_or_else(|| panic!("{shown} is not a node of the cluster"))
    }

    /// Runs `rabbitmqctl` against node `i` with the cluster's cookie.
    ///
    /// # Panics
    ///
    /// When it fails.
    pub fn ctl(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new(format!("{}/rabbitmqctl", self.sbin))
            .env("HOME", &self.home)
            .arg("-n")
            .arg(&self.nodes[i])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "rabbitmqctl -n {} {}: {}{}",
            self.nodes[i],
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops node `i`'s RabbitMQ application (its Erlang VM stays up, as for a restart):
    /// every connection to it is closed and its queue replicas go away. The node comes back
    /// when the returned guard is restarted or dropped.
    pub async fn stop_node(&self, i: usize) -> NodeDown {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.ctl(i, &["stop_app"]);
        })
        .await
        .expect("stop_app");
        NodeDown {
            cluster: self.clone(),
            node: i,
            up: false,
        }
    }

    fn start_app(&self, i: usize) {
        self.ctl(i, &["start_app"]);
        self.ctl(i, &["await_startup", "--timeout", "120"]);
    }

    /// Whether every node's RabbitMQ application runs, as node `from` sees it.
    pub fn all_running(&self, from: usize) -> bool {
        let out = self.ctl(from, &["cluster_status", "--formatter", "json"]);
        let status: serde_json::Value = serde_json::from_str(&out).expect("cluster_status JSON");
        status["running_nodes"]
            .as_array()
            .is_some_and(|n| n.len() == self.len())
    }

    /// Waits (≤ 60 s) until every node runs and every quorum queue has a leader again.
    pub async fn wait_healthy(&self) {
        let this = self.clone();
        crate::wait_until(
            Duration::from_secs(60),
            "every cluster node running",
            || {
                let this = this.clone();
                async move {
                    tokio::task::spawn_blocking(move || this.all_running(0))
                        .await
                        .unwrap_or(false)
                }
            },
        )
        .await;
    }
}

/// A stopped node; started again by [`NodeDown::start`] or, on any other path (a failed
/// assertion included), when dropped.
#[derive(Debug)]
pub struct NodeDown {
    cluster: Cluster,
    node: usize,
    up: bool,
}

impl NodeDown {
    /// Starts the node again and waits until it runs.
    pub async fn start(mut self) {
        let (cluster, node) = (self.cluster.clone(), self.node);
        tokio::task::spawn_blocking(move || cluster.start_app(node))
            .await
            .expect("start_app");
        self.up = true;
    }
}

impl Drop for NodeDown {
    fn drop(&mut self) {
        if !self.up {
            // A panicking test must not leave the cluster a node short for the next one.
            self.cluster.start_app(self.node);
        }
    }
}
