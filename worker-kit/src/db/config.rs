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
//! | `PGSSLMODE`, `PGSSLROOTCERT` | unset | `sslmode` and `sslrootcert` of every DSN that names none (libpq's rule: the DSN wins) |
//!
//! A DSN may carry libpq's `sslmode` (`disable`, `prefer` (default), `require`, `verify-ca`,
//! `verify-full`) and `sslrootcert`; [`worker_kit_pg_tls`] reads them and builds the rustls
//! connector every connection of the client uses. `sslmode=allow` and client certificates
//! (`PGSSLCERT`, `PGSSLKEY`) are refused with a message saying so.

use std::time::Duration;

use crate::Error;
use crate::config::Secret;
use crate::config::reader::{Var, Vars, millis, setting_error, whole};

/// Settings of one database client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DbConfig {
    /// The DSN (`postgres://user:password@host:port/db`); shown with its password hidden.
    pub dsn: Secret,
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

/// The variables every database kind shares (its DSN variable is named after the kind).
const VARS: &[Var<DbConfig>] = &[
    Var {
        name: "DB_POOL_SIZE",
        example: "16",
        secret: false,
        parse: |v, c| {
            let n = whole(v, 0, u64::MAX, "")?;
            if n == 0 {
                return Err("expected a positive whole number".into());
            }
            c.pool_size = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(())
        },
    },
    Var {
        name: "DB_CONNECT_TIMEOUT_MS",
        example: "5000",
        secret: false,
        parse: |v, c| {
            c.connect_timeout = millis(v, false)?;
            Ok(())
        },
    },
    Var {
        name: "DB_ACQUIRE_TIMEOUT_MS",
        example: "5000",
        secret: false,
        parse: |v, c| {
            c.acquire_timeout = millis(v, false)?;
            Ok(())
        },
    },
    Var {
        name: "DB_STATEMENT_TIMEOUT_MS",
        example: "30000",
        secret: false,
        parse: |v, c| {
            c.statement_timeout = millis(v, true)?;
            Ok(())
        },
    },
    Var {
        name: "DB_STARTUP_TIMEOUT_MS",
        example: "30000",
        secret: false,
        parse: |v, c| {
            c.startup_timeout = millis(v, false)?;
            Ok(())
        },
    },
];

/// libpq's variables: the server of a DSN built by convention (`PGHOST`, `PGPORT`,
/// `PGUSER`, `PGPASSWORD`) and the TLS settings of any DSN that does not name its own
/// (`PGSSLMODE`, `PGSSLROOTCERT`; `PGSSLCERT` and `PGSSLKEY` are refused, see
/// [`worker_kit_pg_tls::with_env_defaults`]).
pub(crate) const LIBPQ_VARS: &[&str] = &[
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
];

impl DbConfig {
    /// Settings for `dsn` with the defaults.
    pub fn new(dsn: impl Into<String>) -> Self {
        Self {
            dsn: Secret::from(dsn.into()),
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
        let dsn_var = format!("DB_{}_DSN", kind.to_ascii_uppercase());
        // Only this kind's DSN, the shared rows and libpq's variables are kept.
        let vars = Vars::all(vars.into_iter().filter(|(k, _)| {
            *k == dsn_var || VARS.iter().any(|v| v.name == k) || LIBPQ_VARS.contains(&k.as_str())
        }));
        let example = if kind == "main" {
            format!(
                "postgres://app@127.0.0.1:5432/{service}?sslmode=verify-full&sslrootcert=/etc/postgresql/ca.pem"
            )
        } else {
            format!(
                "postgres://app@127.0.0.1:5432/{service}_{kind}?sslmode=verify-full&sslrootcert=/etc/postgresql/ca.pem"
            )
        };
        let (dsn, from) = match vars.get(&dsn_var) {
            Some(dsn) => (dsn.to_owned(), dsn_var.as_str()),
            None if kind == "main" => (default_dsn(&vars, service), "PGHOST"),
            None => {
                return Err(Error::Config(format!(
                    "{dsn_var} is not set: database kind `{kind}` needs it, e.g. {dsn_var}={example}"
                )));
            }
        };
        let env = |name: &str| vars.get(name).map(str::to_owned);
        let tls = worker_kit_pg_tls::EnvTls::read(env).map_err(|e| Error::Config(e.to_string()))?;
        // libpq's rule: the DSN's own sslmode and sslrootcert win, PGSSLMODE and
        // PGSSLROOTCERT fill in what it leaves out.
        let problem = |e: worker_kit_pg_tls::Error, dsn: &str| {
            let shown = Secret::from(dsn).shown();
            if from == "PGHOST" {
                Error::Config(format!(
                    "the database DSN built from PGHOST, PGPORT, PGUSER, PGSSLMODE and PGSSLROOTCERT ({shown}): {e}; fix those variables or set {dsn_var}, e.g. {dsn_var}={example}"
                ))
            } else {
                setting_error(
                    &dsn_var,
                    &shown,
                    &format!("not a usable PostgreSQL DSN ({e})"),
                    &example,
                )
            }
        };
        let dsn = tls.apply(&dsn).map_err(|e| problem(e, &dsn))?;
        worker_kit_pg_tls::Target::from_dsn(&dsn).map_err(|e| problem(e, &dsn))?;
        let mut c = Self::new(dsn);
        vars.apply(VARS, &mut c)?;
        Ok(c)
    }
}

/// The database-per-service convention: the service's own database on the server the
/// libpq variables name.
fn default_dsn(vars: &Vars, service: &str) -> String {
    let get = |k: &str, d: &str| vars.get(k).unwrap_or(d).to_owned();
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
    fn pgsslmode_and_pgsslrootcert_fill_in_what_the_dsn_leaves_out() {
        let c = DbConfig::from_vars(
            "main",
            "example",
            vars(&[("PGHOST", "db.internal"), ("PGSSLMODE", "require")]),
        )
        .unwrap();
        assert_eq!(
            c.dsn,
            "postgres://postgres@db.internal:5432/example?sslmode=require"
        );
        // PGSSLROOTCERT is read when the settings are (here: a file that is not there).
        let err = DbConfig::from_vars(
            "main",
            "example",
            vars(&[
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", "/nonexistent/ca.pem"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem")
                && err.contains("sslrootcert=/nonexistent/ca.pem: cannot read it"),
            "{err}"
        );
        // An explicit DSN takes them too, unless it names its own (libpq's rule).
        let c = DbConfig::from_vars(
            "dwh",
            "example",
            vars(&[("DB_DWH_DSN", "postgres://x@h/w"), ("PGSSLMODE", "disable")]),
        )
        .unwrap();
        assert_eq!(c.dsn, "postgres://x@h/w?sslmode=disable");
        let c = DbConfig::from_vars(
            "dwh",
            "example",
            vars(&[
                ("DB_DWH_DSN", "postgres://x@h/w?sslmode=require"),
                ("PGSSLMODE", "disable"),
            ]),
        )
        .unwrap();
        assert_eq!(c.dsn, "postgres://x@h/w?sslmode=require");
    }

    #[test]
    fn tls_settings_that_cannot_be_honoured_are_refused() {
        let err = DbConfig::from_vars("main", "s", vars(&[("PGSSLMODE", "verify-full")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sslmode=verify-full needs sslrootcert")
                && err.contains("PGSSLROOTCERT")
                && err.contains("e.g. DB_MAIN_DSN="),
            "{err}"
        );
        let err = DbConfig::from_vars(
            "main",
            "s",
            vars(&[("PGSSLMODE", "allow"), ("PGPASSWORD", "secret")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("PGSSLMODE: sslmode=allow is not supported"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let err = DbConfig::from_vars(
            "main",
            "s",
            vars(&[("PGSSLMODE", "verify-full"), ("PGPASSWORD", "secret")]),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("secret"), "{err}");
        let err = DbConfig::from_vars("main", "s", vars(&[("PGSSLKEY", "/k.pem")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PGSSLKEY is set, but client certificates are not supported"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = DbConfig::new("postgres://u:secret@h/db");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
