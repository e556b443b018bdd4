//! Database settings from the environment.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `DB_<KIND>_DSN` | for `main`: built from `PGHOST`/`PGPORT`/`PGUSER`/`PGPASSWORD` with the database named after the service | where kind `<KIND>` lives (`DB_MAIN_DSN`, `DB_DWH_DSN`, ...) |
//! | `DB_POOL_SIZE` | `16` | connections per pool |
//! | `DB_CONNECT_TIMEOUT_MS` | `5000` | one connection attempt |
//! | `DB_ACQUIRE_TIMEOUT_MS` | `5000` | waiting for a free connection (or a new one) before answering `Unavailable` |
//! | `DB_STATEMENT_TIMEOUT_MS` | `30000` | server-side `statement_timeout` (`0` = none) |
//! | `DB_STARTUP_TIMEOUT_MS` | `30000` | how long the first connect is retried at start |
//!
//! A DSN may carry libpq's `sslmode` (`disable`, `prefer` (default), `require`, `verify-ca`,
//! `verify-full`) and `sslrootcert`; [`worker_kit_pg_tls`] reads them and builds the rustls
//! connector every connection of the client uses.

use std::collections::HashMap;
use std::time::Duration;

use crate::Error;

/// Settings of one database client.
#[derive(Clone)]
#[non_exhaustive]
pub struct DbConfig {
    /// The DSN (`postgres://user:password@host:port/db`); a secret.
    pub dsn: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// One connection attempt.
    pub connect_timeout: Duration,
    /// Waiting for a connection from the pool.
    pub acquire_timeout: Duration,
    /// Server-side statement timeout; zero for none.
    pub statement_timeout: Duration,
    /// How long [`Database::connect`](crate::Database::connect) retries at start.
    pub startup_timeout: Duration,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("dsn", &crate::redact::url(&self.dsn))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("startup_timeout", &self.startup_timeout)
            .finish()
    }
}

impl DbConfig {
    /// Settings for `dsn` with the defaults.
    pub fn new(dsn: impl Into<String>) -> Self {
        Self {
            dsn: dsn.into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            startup_timeout: Duration::from_secs(30),
        }
    }

    /// Reads the settings of database kind `kind` (e.g. `main`) for `service` from the
    /// process environment (after `.env`, which [`Config::from_env`](crate::Config::from_env)
    /// loads).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the malformed variable, with an example of a good value.
    pub fn from_env(kind: &str, service: &str) -> Result<Self, Error> {
        Self::from_vars(kind, service, std::env::vars())
    }

    /// As [`DbConfig::from_env`], from the given pairs (testable).
    ///
    /// # Errors
    ///
    /// As [`DbConfig::from_env`].
    pub fn from_vars(
        kind: &str,
        service: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Error> {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let dsn_var = format!("DB_{}_DSN", kind.to_ascii_uppercase());
        let dsn = match vars.get(&dsn_var) {
            Some(dsn) => {
                worker_kit_pg_tls::Target::from_dsn(dsn).map_err(|e| {
                    Error::Config(format!(
                        "{dsn_var}={:?}: not a PostgreSQL DSN ({e}), e.g. {dsn_var}=postgres://app@127.0.0.1:5432/{service}",
                        crate::redact::url(dsn)
                    ))
                })?;
                dsn.clone()
            }
            None if kind == "main" => default_dsn(&vars, service),
            None => {
                return Err(Error::Config(format!(
                    "{dsn_var} is not set: database kind `{kind}` needs it, e.g. {dsn_var}=postgres://app@127.0.0.1:5432/{service}_{kind}"
                )));
            }
        };
        let mut c = Self::new(dsn);
        if let Some(n) = number(&vars, "DB_POOL_SIZE", "16")? {
            if n == 0 {
                return Err(Error::Config(
                    "DB_POOL_SIZE=\"0\": expected a positive whole number, e.g. DB_POOL_SIZE=16"
                        .into(),
                ));
            }
            c.pool_size = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let ms = |name: &str, example: &str, zero_ok: bool| -> Result<Option<Duration>, Error> {
            match number(&vars, name, example)? {
                Some(0) if !zero_ok => Err(Error::Config(format!(
                    "{name}=\"0\": expected a positive number of milliseconds, e.g. {name}={example}"
                ))),
                other => Ok(other.map(Duration::from_millis)),
            }
        };
        if let Some(d) = ms("DB_CONNECT_TIMEOUT_MS", "5000", false)? {
            c.connect_timeout = d;
        }
        if let Some(d) = ms("DB_ACQUIRE_TIMEOUT_MS", "5000", false)? {
            c.acquire_timeout = d;
        }
        if let Some(d) = ms("DB_STATEMENT_TIMEOUT_MS", "30000", true)? {
            c.statement_timeout = d;
        }
        if let Some(d) = ms("DB_STARTUP_TIMEOUT_MS", "30000", false)? {
            c.startup_timeout = d;
        }
        Ok(c)
    }
}

/// The database-per-service convention: the service's own database on the server the
/// libpq variables name.
fn default_dsn(vars: &HashMap<String, String>, service: &str) -> String {
    let get = |k: &str, d: &str| vars.get(k).cloned().unwrap_or_else(|| d.to_owned());
    let host = get("PGHOST", "127.0.0.1");
    let port = get("PGPORT", "5432");
    let user = get("PGUSER", "postgres");
    let mut url = url::Url::parse("postgres://localhost/").expect("static URL parses");
    // Setting parts through `url` percent-encodes them, so odd passwords stay intact.
    let _ = url.set_host(Some(&host));
    let _ = url.set_port(port.parse().ok());
    let _ = url.set_username(&user);
    if let Some(pw) = vars.get("PGPASSWORD") {
        let _ = url.set_password(Some(pw));
    }
    url.set_path(service);
    url.to_string()
}

fn number(vars: &HashMap<String, String>, name: &str, example: &str) -> Result<Option<u64>, Error> {
    match vars.get(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            Error::Config(format!(
                "{name}={v:?}: expected a whole number, e.g. {name}={example}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn main_defaults_to_the_service_database() {
        let c = DbConfig::from_vars("main", "example", vars(&[])).unwrap();
        assert_eq!(c.dsn, "postgres://postgres@127.0.0.1:5432/example");
        let c = DbConfig::from_vars(
            "main",
            "example",
            vars(&[
                ("PGHOST", "db"),
                ("PGUSER", "app"),
                ("PGPASSWORD", "p@ss"),
                ("PGPORT", "6543"),
            ]),
        )
        .unwrap();
        assert_eq!(c.dsn, "postgres://app:p%40ss@db:6543/example");
    }

    #[test]
    fn explicit_dsn_per_kind() {
        let c = DbConfig::from_vars(
            "dwh",
            "example",
            vars(&[("DB_DWH_DSN", "postgres://x@h/w")]),
        )
        .unwrap();
        assert_eq!(c.dsn, "postgres://x@h/w");
        let err = DbConfig::from_vars("dwh", "example", vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DB_DWH_DSN is not set"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = DbConfig::from_vars("main", "s", vars(&[("DB_POOL_SIZE", "many")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DB_POOL_SIZE=\"many\": expected a whole number, e.g. DB_POOL_SIZE=16"),
            "{err}"
        );
        let err = DbConfig::from_vars("main", "s", vars(&[("DB_POOL_SIZE", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("positive"), "{err}");
        let err = DbConfig::from_vars("main", "s", vars(&[("DB_ACQUIRE_TIMEOUT_MS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DB_ACQUIRE_TIMEOUT_MS"), "{err}");
        let c =
            DbConfig::from_vars("main", "s", vars(&[("DB_STATEMENT_TIMEOUT_MS", "0")])).unwrap();
        assert!(c.statement_timeout.is_zero());
    }

    #[test]
    fn malformed_dsn_is_reported_without_password() {
        let err = DbConfig::from_vars(
            "main",
            "s",
            vars(&[("DB_MAIN_DSN", "postgres://u:secret@h:notaport/db")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("configuration: DB_MAIN_DSN="), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn debug_hides_the_password() {
        let c = DbConfig::new("postgres://u:secret@h/db");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
