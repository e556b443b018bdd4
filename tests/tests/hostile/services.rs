//! The `example`, `greeter` and `catalog` services, started in-process on a vhost of their
//! own through the real broker, each on a database of its own where it has one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::pg::TestDb;
use worker_kit::access::AllowList;
use worker_kit::config::{Config, EventPublishers, Mode};
use worker_kit::testing::BrokerFixture;
use worker_kit::{Broker, Setup};

use crate::targets::EVENTS;

/// The services' names, as their connections are named.
pub(crate) const SERVICES: [&str; 3] = ["example", "greeter", "catalog"];

/// The running services, their databases, and their broker connections (to see from
/// inside the process when one is replaced).
pub(crate) struct Services {
    pub(crate) fx: BrokerFixture,
    pub(crate) write: TestDb,
    pub(crate) read: TestDb,
    pub(crate) brokers: Vec<(&'static str, Broker)>,
}

/// The settings every service runs with: short retry waits and handler limit, so that what
/// the generator sends is settled within the run.
pub(crate) fn settings() -> Config {
    let mut c = Config::default();
    c.amqp_url = e2e::amqp_url().parse().expect("AMQP_URL parses");
    c.mode = Mode::Development;
    c.retry_delay = Duration::from_millis(100);
    c.retry_max_delay = Duration::from_millis(400);
    c.handler_timeout = Duration::from_secs(5);
    c.drain_timeout = Duration::from_secs(10);
    c.connect_timeout = Duration::from_secs(10);
    c
}

/// The user the fixture (and so every service) logs in as.
pub(crate) fn service_user(config: &Config) -> String {
    let url = url::Url::parse(&config.amqp_url).expect("AMQP_URL parses");
    match url.username() {
        "" => "guest".to_owned(),
        u => u.to_owned(),
    }
}

type Kept = Arc<Mutex<Vec<(&'static str, Broker)>>>;

/// Gives `setup` the services' settings (`tune`d) and keeps its broker handle.
fn keep(kept: &Kept, setup: &mut Setup, tune: impl FnOnce(&mut Config)) {
    let mut config = (*setup.config).clone();
    config.event_publishers = EventPublishers::Owner;
    tune(&mut config);
    setup.config = Arc::new(config);
    kept.lock()
        .unwrap()
        .push((setup.service, setup.broker.clone()));
}

/// Starts the three services on a fresh vhost. `catalog` admits events only from the
/// services' own user (`EVENT_PUBLISHERS=owner` with `ROUTE_ALLOW` naming it for each
/// subscribed event), as a deployment with a user per service would.
pub(crate) async fn start() -> Services {
    let mut fx = BrokerFixture::new(&settings()).expect("a vhost for the services");
    let write = TestDb::with_models("example").await;
    let read = TestDb::with_models("catalog").await;
    let kept: Kept = Arc::default();

    let (k, dsn) = (kept.clone(), write.dsn.clone());
    fx.start("example", move |mut setup| async move {
        keep(&k, &mut setup, |_| {});
        example::build(setup.with_var("DB_MAIN_DSN", dsn)).await
    })
    .await
    .expect("example starts");
    let k = kept.clone();
    fx.start("greeter", move |mut setup| async move {
        keep(&k, &mut setup, |_| {});
        greeter::build(setup).await
    })
    .await
    .expect("greeter starts");
    let (k, dsn) = (kept.clone(), read.dsn.clone());
    fx.start("catalog", move |mut setup| async move {
        keep(&k, &mut setup, |c| {
            let user = service_user(c);
            for name in EVENTS {
                c.route_allow
                    .push((name.to_owned(), AllowList::new([user.clone()])));
            }
        });
        catalog::build(setup.with_var("DB_MAIN_DSN", dsn)).await
    })
    .await
    .expect("catalog starts");
    let brokers = kept.lock().unwrap().drain(..).collect();
    Services {
        fx,
        write,
        read,
        brokers,
    }
}
