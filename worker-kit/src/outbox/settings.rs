//! The outbox's deployment settings, from the environment: what an operator tunes without
//! a rebuild (how often the relay looks, how long sent rows and processed ids are kept,
//! which exchange carries the events).

use std::time::Duration;

use crate::Error;
use crate::config::reader::{Var, Vars, whole};

/// Settings of the outbox [`Relay`](super::Relay), the [`ProcessedEventsPruner`](super::ProcessedEventsPruner)
/// and the event exchange. Read them with [`OutboxSettings::from_env`]; apply them with
/// [`Relay::settings`](super::Relay::settings).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxSettings {
    /// `EVENTS_EXCHANGE`: the topic exchange events are published to and subscribed on
    /// (default `events`).
    pub exchange: String,
    /// `OUTBOX_BATCH_SIZE`: events the relay publishes per transaction (default 200).
    pub batch_size: u16,
    /// `OUTBOX_POLL_INTERVAL_MS`: how often the relay looks for events when no commit
    /// notification arrives (default 1000): the delay of an event whose notification was
    /// lost.
    pub poll_interval: Duration,
    /// `OUTBOX_CONFIRM_TIMEOUT_MS`: how long the relay waits for the broker to confirm a
    /// batch before it tries again (default 30000).
    pub confirm_timeout: Duration,
    /// `OUTBOX_RETENTION_SECS`: how long sent outbox rows are kept before they are pruned
    /// (default 604800, 7 days).
    pub retention: Duration,
    /// `PROCESSED_EVENTS_RETENTION_SECS`: how long a subscriber keeps the ids of the events
    /// it applied (default 604800, 7 days). A copy of an event older than this would be
    /// applied again, so keep it longer than any redelivery can take.
    pub processed_retention: Duration,
}

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            exchange: crate::events::EXCHANGE.to_owned(),
            batch_size: 200,
            poll_interval: Duration::from_secs(1),
            confirm_timeout: Duration::from_secs(30),
            retention: WEEK,
            processed_retention: WEEK,
        }
    }
}

/// The outbox's variables, one row each (the defaults are [`OutboxSettings::default`]'s).
const VARS: &[Var<OutboxSettings>] = &[
    Var {
        name: "EVENTS_EXCHANGE",
        example: "events",
        secret: false,
        parse: |v, s| {
            s.exchange = exchange_name(v)?;
            Ok(())
        },
    },
    Var {
        name: "OUTBOX_BATCH_SIZE",
        example: "200",
        secret: false,
        parse: |v, s| {
            s.batch_size =
                u16::try_from(whole(v, 1, 10_000, " from 1 to 10000")?).expect("checked range");
            Ok(())
        },
    },
    Var {
        name: "OUTBOX_POLL_INTERVAL_MS",
        example: "1000",
        secret: false,
        parse: |v, s| {
            s.poll_interval =
                Duration::from_millis(whole(v, 10, 3_600_000, " from 10 to 3600000")?);
            Ok(())
        },
    },
    Var {
        name: "OUTBOX_CONFIRM_TIMEOUT_MS",
        example: "30000",
        secret: false,
        parse: |v, s| {
            s.confirm_timeout =
                Duration::from_millis(whole(v, 100, 3_600_000, " from 100 to 3600000")?);
            Ok(())
        },
    },
    Var {
        name: "OUTBOX_RETENTION_SECS",
        example: "604800",
        secret: false,
        parse: |v, s| {
            s.retention = Duration::from_secs(whole(v, 1, TEN_YEARS_SECS, " from 1 to 315360000")?);
            Ok(())
        },
    },
    Var {
        name: "PROCESSED_EVENTS_RETENTION_SECS",
        example: "604800",
        secret: false,
        parse: |v, s| {
            s.processed_retention =
                Duration::from_secs(whole(v, 1, TEN_YEARS_SECS, " from 1 to 315360000")?);
            Ok(())
        },
    },
];

const TEN_YEARS_SECS: u64 = 10 * 365 * 86_400;

impl OutboxSettings {
    /// Reads the settings from the process environment (after `.env`, which
    /// [`Config::from_env`](crate::Config::from_env) loads).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first malformed variable, with a good value.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from the given `(name, value)` pairs: the testable core of
    /// [`OutboxSettings::from_env`].
    ///
    /// # Errors
    ///
    /// As [`OutboxSettings::from_env`].
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let mut s = Self::default();
        Vars::of(VARS, vars).apply(VARS, &mut s)?;
        Ok(s)
    }
}

/// An exchange name AMQP accepts that is not one of the broker's own (`amq.*`).
fn exchange_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && !value.starts_with("amq.")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err("expected an exchange name of letters, digits, '-', '_', '.' or ':' (at most 255 bytes, not amq.*)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<OutboxSettings, Error> {
        OutboxSettings::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn defaults_without_variables() {
        assert_eq!(read(&[]).unwrap(), OutboxSettings::default());
        assert_eq!(OutboxSettings::default().exchange, "events");
    }

    #[test]
    fn reads_every_variable() {
        let s = read(&[
            ("EVENTS_EXCHANGE", "bus.prod"),
            ("OUTBOX_BATCH_SIZE", "50"),
            ("OUTBOX_POLL_INTERVAL_MS", "250"),
            ("OUTBOX_CONFIRM_TIMEOUT_MS", "5000"),
            ("OUTBOX_RETENTION_SECS", "3600"),
            ("PROCESSED_EVENTS_RETENTION_SECS", "86400"),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        assert_eq!(s.exchange, "bus.prod");
        assert_eq!(s.batch_size, 50);
        assert_eq!(s.poll_interval, Duration::from_millis(250));
        assert_eq!(s.confirm_timeout, Duration::from_secs(5));
        assert_eq!(s.retention, Duration::from_secs(3600));
        assert_eq!(s.processed_retention, Duration::from_secs(86_400));
    }

    #[test]
    fn a_malformed_value_names_the_variable_and_a_good_value() {
        let e = read(&[("OUTBOX_BATCH_SIZE", "0")]).unwrap_err().to_string();
        assert!(
            e.contains("OUTBOX_BATCH_SIZE=\"0\"") && e.contains("from 1 to 10000"),
            "{e}"
        );
        assert!(e.contains("e.g. OUTBOX_BATCH_SIZE=200"), "{e}");
        let e = read(&[("OUTBOX_RETENTION_SECS", "7d")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("OUTBOX_RETENTION_SECS"), "{e}");
        let e = read(&[("EVENTS_EXCHANGE", "amq.topic")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not amq.*"), "{e}");
    }
}
