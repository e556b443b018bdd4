//! The real-broker tier: a throw-away vhost per test on the real RabbitMQ, the service's
//! Runner started in-process on it, and a check on the way out that nothing leaked.

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::amqp::Broker;
use crate::config::Config;
use crate::rpc::RpcClient;
use crate::runner::{Runner, Running, Setup};

/// Why the fixture could not set up, or what it found on the way out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// `rabbitmqctl` could not be run, or refused (no rights on the broker's host).
    #[error(
        "rabbitmqctl {args} failed: {message} (the broker fixture makes a vhost per test with rabbitmqctl on the broker's host)"
    )]
    Rabbitmqctl {
        /// The arguments.
        args: String,
        /// Its stderr, or why it did not start.
        message: String,
    },
    /// The base `AMQP_URL` does not parse.
    #[error("AMQP_URL is not a URL: {0}")]
    Url(String),
    /// The service could not be built or started.
    #[error("the service did not start: {0}")]
    Start(#[source] crate::Error),
    /// The Runner stopped with an error.
    #[error("the service stopped with an error: {0}")]
    Stop(#[source] crate::Error),
    /// Connections or queues were left behind after the service stopped.
    #[error("leaked on vhost {vhost}: {what}")]
    Leaked {
        /// The test's vhost.
        vhost: String,
        /// What is still there.
        what: String,
    },
}

/// One test's isolated namespace on the real RabbitMQ: a vhost made for it (with
/// `rabbitmqctl`), a service's Runner started in-process on it, RPC clients for it.
///
/// End the test with [`BrokerFixture::finish`]: it stops the Runner, closes the clients,
/// fails if connections or queues with consumers are left, and deletes the vhost. A
/// fixture dropped without `finish` deletes its vhost too and fails the test.
///
/// Needs `rabbitmqctl` on the broker's host and a user (the one in `AMQP_URL`) that the
/// fixture may grant the new vhost to.
pub struct BrokerFixture {
    vhost: String,
    config: Arc<Config>,
    running: Vec<Running>,
    brokers: Vec<Broker>,
    finished: bool,
}

impl std::fmt::Debug for BrokerFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerFixture")
            .field("vhost", &self.vhost)
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl BrokerFixture {
    /// A fresh vhost on the broker of `config.amqp_url` (one node), granted to its user;
    /// the fixture's config points at it.
    ///
    /// # Errors
    ///
    /// [`FixtureError::Url`] or [`FixtureError::Rabbitmqctl`].
    pub fn new(config: &Config) -> Result<Self, FixtureError> {
        let mut url =
            url::Url::parse(&config.amqp_url).map_err(|e| FixtureError::Url(format!("{e}")))?;
        let user = match url.username() {
            "" => "guest".to_owned(),
            u => percent_decode(u),
        };
        let vhost = format!("wk-test-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &vhost])?;
        if let Err(e) = rabbitmqctl(&["set_permissions", "-p", &vhost, &user, ".*", ".*", ".*"]) {
            let _ = rabbitmqctl(&["delete_vhost", &vhost]);
            return Err(e);
        }
        url.set_path(&format!("/{vhost}"));
        let mut config = config.clone();
        config.amqp_url = url
            .as_str()
            .parse()
            .map_err(|e: crate::Error| FixtureError::Url(e.to_string()))?;
        // Every service of the fixture logs in as this one user, which owns no event name.
        config.event_publishers = crate::config::EventPublishers::Any;
        Ok(Self {
            vhost,
            config: Arc::new(config),
            running: Vec::new(),
            brokers: Vec::new(),
            finished: false,
        })
    }

    /// A fixture on `AMQP_URL` (or the default local broker) with default settings.
    ///
    /// # Errors
    ///
    /// As [`BrokerFixture::new`].
    pub fn from_env() -> Result<Self, FixtureError> {
        let mut config = Config::default();
        if let Ok(url) = std::env::var("AMQP_URL") {
            config.amqp_url = url
                .parse()
                .map_err(|e: crate::Error| FixtureError::Url(e.to_string()))?;
        }
        Self::new(&config)
    }

    /// The vhost of this test.
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// The settings, with `amqp_url` on this test's vhost.
    pub fn config(&self) -> Arc<Config> {
        self.config.clone()
    }

    /// A broker connection on this test's vhost, as `runner::main` hands a service (its
    /// settings variables the process environment's: give the test's own with
    /// [`Setup::with_var`]).
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached.
    pub async fn setup(&self, service: &'static str) -> Result<Setup, crate::Error> {
        let broker = Broker::connect_configured(&self.config, service).await?;
        Ok(Setup::new(service, self.config.clone(), broker))
    }

    /// Builds the service with `build` (a service's `build(setup)`) and starts its Runner;
    /// returns once every worker consumes. Call it once per service a test needs (they
    /// share the vhost, as they would share a broker).
    ///
    /// # Errors
    ///
    /// [`FixtureError::Start`] when the broker cannot be reached or the service does not
    /// build or start.
    pub async fn start<F, Fut>(
        &mut self,
        service: &'static str,
        build: F,
    ) -> Result<(), FixtureError>
    where
        F: FnOnce(Setup) -> Fut,
        Fut: Future<Output = Result<Runner, crate::Error>>,
    {
        let setup = self.setup(service).await.map_err(FixtureError::Start)?;
        let runner = build(setup).await.map_err(FixtureError::Start)?;
        self.running
            .push(runner.start().await.map_err(FixtureError::Start)?);
        Ok(())
    }

    /// An RPC client on this test's vhost (closed by [`BrokerFixture::finish`]).
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached.
    pub async fn client(&mut self) -> Result<RpcClient, crate::Error> {
        let broker = Broker::connect(
            &self.config.amqp_url,
            "test-client",
            Duration::from_secs(10),
        )
        .await?;
        let client = RpcClient::new(&broker, &self.config).await?;
        self.brokers.push(broker);
        Ok(client)
    }

    /// Stops the Runners (draining in-flight messages), closes the clients, checks that
    /// no connection and no consumer is left on the vhost, and deletes it.
    ///
    /// # Errors
    ///
    /// [`FixtureError::Stop`] when the Runner stopped with an error,
    /// [`FixtureError::Leaked`] when something was left behind (the vhost is deleted
    /// anyway), [`FixtureError::Rabbitmqctl`] when the broker could not be asked.
    pub async fn finish(mut self) -> Result<(), FixtureError> {
        self.finished = true;
        let mut stopped = Ok(());
        for running in self.running.drain(..) {
            if let Err(e) = running.stop().await {
                stopped = stopped.and(Err(FixtureError::Stop(e)));
            }
        }
        for broker in self.brokers.drain(..) {
            broker.close().await;
        }
        let leaks = self.wait_for_no_leaks().await;
        let deleted = rabbitmqctl(&["delete_vhost", &self.vhost]);
        stopped?;
        leaks?;
        deleted.map(drop)
    }

    /// Connections close asynchronously on the broker's side: wait for them, with a
    /// deadline, before calling whatever is left a leak.
    async fn wait_for_no_leaks(&self) -> Result<(), FixtureError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let vhost = self.vhost.clone();
            let found = tokio::task::spawn_blocking(move || leftovers(&vhost))
                .await
                .unwrap_or_else(|e| {
                    Err(FixtureError::Rabbitmqctl {
                        args: "list_connections".into(),
                        message: e.to_string(),
                    })
                })?;
            match found {
                None => return Ok(()),
                Some(what) if Instant::now() >= deadline => {
                    return Err(FixtureError::Leaked {
                        vhost: self.vhost.clone(),
                        what,
                    });
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

impl Drop for BrokerFixture {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Deleting the vhost closes its connections and queues on the broker's side.
        let deleted = rabbitmqctl(&["delete_vhost", &self.vhost]);
        if !std::thread::panicking() {
            panic!(
                "BrokerFixture for vhost {} dropped without finish().await: nothing checked for leaks{}",
                self.vhost,
                deleted
                    .err()
                    .map(|e| format!("; deleting it failed too: {e}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// Connections, and queues that still have consumers or are exclusive, on `vhost`.
fn leftovers(vhost: &str) -> Result<Option<String>, FixtureError> {
    let conns = rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "vhost",
        "name",
    ])?;
    let conns: Vec<&str> = conns
        .lines()
        .filter(|l| l.split('\t').next() == Some(vhost))
        .collect();
    let queues = rabbitmqctl(&[
        "list_queues",
        "-q",
        "--no-table-headers",
        "-p",
        vhost,
        "name",
        "consumers",
        "exclusive",
    ])?;
    let busy: Vec<&str> = queues
        .lines()
        .filter(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            cols.get(1).is_some_and(|c| *c != "0") || cols.get(2) == Some(&"true")
        })
        .collect();
    if conns.is_empty() && busy.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "{} connection(s) [{}], {} queue(s) with consumers or exclusive [{}]",
        conns.len(),
        conns.join("; "),
        busy.len(),
        busy.join("; ")
    )))
}

fn rabbitmqctl(args: &[&str]) -> Result<String, FixtureError> {
    let err = |message: String| FixtureError::Rabbitmqctl {
        args: args.join(" "),
        message,
    };
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("u={s}").as_bytes())
        .next()
        .map_or_else(|| s.to_owned(), |(_, v)| v.into_owned())
}
