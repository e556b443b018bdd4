//! Settings from the environment (and a `.env` file when present; the environment wins).
//!
//! Every variable has a default that works against a local RabbitMQ, so a service starts
//! with no configuration at all in development. A malformed value is reported as one line
//! that names the variable, says what is wrong and shows a good value. One reader
//! (`reader`) reads every group of settings from a table with a row per variable: the
//! kit's (`vars`), the databases' and the outbox's.

pub(crate) mod amqp_url;
mod choices;
mod fields;
pub(crate) mod reader;
mod secret;
mod vars;

use std::time::Duration;

use crate::Error;

pub use self::amqp_url::{AmqpUrl, DEFAULT_AMQP_URL};
pub use self::choices::{
    AllowList, Anonymous, EventPublishers, LogFormat, Mode, PausePolicy, QueueType, RpcQueueDurable,
};
pub use self::fields::Config;
pub(crate) use self::reader::setting_error;
use self::reader::{Vars, example_of};
pub use self::secret::Secret;
use self::vars::VARS;

impl Config {
    /// Reads the settings from the process environment, after loading `.env` from the
    /// current directory when there is one (variables already set win).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first malformed variable, e.g.
    /// `AMQP_PREFETCH="lots": expected a whole number from 1 to 65535, e.g. AMQP_PREFETCH=64`.
    pub fn from_env() -> Result<Self, Error> {
        load_dotenv()?;
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from the given `(name, value)` pairs (no `.env`, no process
    /// environment): the testable core of [`Config::from_env`].
    ///
    /// # Errors
    ///
    /// As [`Config::from_env`].
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let vars = Vars::of(VARS, vars);
        let mut config = Config::default();
        vars.apply(VARS, &mut config)?;
        let max_is_set = vars.is_set("QUEUE_RETRY_MAX_DELAY_MS");
        if !max_is_set {
            // Unset, the longest wait grows to a first wait set above its default.
            config.retry_max_delay = config.retry_max_delay.max(config.retry_delay);
        }
        check_tls_files(&config)?;
        check_retry_delays(&config, max_is_set)?;
        Ok(config)
    }
}

/// Loads `.env` when present. A missing file is fine; an unreadable or malformed one is not
/// silently ignored, because the settings in it would be.
fn load_dotenv() -> Result<(), Error> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(Error::Config(format!(
            ".env: {e} (fix the file or remove it; lines look like AMQP_PREFETCH=64)"
        ))),
    }
}

/// TLS files with no `amqps://` URL to use them would be ignored, and whoever set them
/// would believe the connection protected.
fn check_tls_files(c: &Config) -> Result<(), Error> {
    let any_tls = c.amqp_url.nodes().iter().any(|n| n.tls);
    let files = [
        ("AMQP_TLS_CA_FILE", &c.amqp_tls_ca_file),
        ("AMQP_TLS_CERT_FILE", &c.amqp_tls_cert_file),
        ("AMQP_TLS_KEY_FILE", &c.amqp_tls_key_file),
    ];
    match files.iter().find(|(_, f)| f.is_some()) {
        Some((name, Some(file))) if !any_tls => Err(bad(
            name,
            &file.display().to_string(),
            "is set but AMQP_URL has no amqps:// URL, so the connection would not use TLS at all; use amqps:// (or unset it)",
        )),
        _ => Ok(()),
    }
}

/// The largest TTL RabbitMQ accepts, in milliseconds (2³²−1): a larger one is refused.
pub(crate) const MAX_TTL_MS: u64 = 4_294_967_295;

/// `QUEUE_RETRY_DELAY_MS` and `QUEUE_RETRY_MAX_DELAY_MS`: the longest wait may not be
/// below the first, nor above the largest TTL the broker accepts.
fn check_retry_delays(c: &Config, max_is_set: bool) -> Result<(), Error> {
    let (first, max) = (c.retry_delay, c.retry_max_delay);
    if max > Duration::from_millis(MAX_TTL_MS) {
        return Err(bad(
            "QUEUE_RETRY_MAX_DELAY_MS",
            &max.as_millis().to_string(),
            "expected at most 4294967295 milliseconds (the broker's largest TTL)",
        ));
    }
    if first > max {
        let (name, value) = if max_is_set {
            ("QUEUE_RETRY_MAX_DELAY_MS", max)
        } else {
            ("QUEUE_RETRY_DELAY_MS", first)
        };
        return Err(bad(
            name,
            &value.as_millis().to_string(),
            &format!(
                "the longest retry delay ({} ms) must be at least the first (QUEUE_RETRY_DELAY_MS={} ms)",
                max.as_millis(),
                first.as_millis()
            ),
        ));
    }
    Ok(())
}

fn bad(name: &str, value: &str, problem: &str) -> Error {
    setting_error(name, value, problem, example_of(VARS, name))
}

#[cfg(test)]
mod tests;
