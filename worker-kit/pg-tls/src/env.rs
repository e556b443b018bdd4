//! libpq's environment variables for TLS (`PGSSLMODE`, `PGSSLROOTCERT`): defaults for a
//! DSN that does not set them itself. As in libpq, what the DSN says wins.

use crate::{Error, SslMode, dsn};

/// The client-certificate variables libpq reads that this crate cannot honour: its rustls
/// connector presents no client certificate. Set, they are refused rather than ignored, so
/// nobody believes the server checks a certificate it never gets.
const UNSUPPORTED: &[&str] = &["PGSSLCERT", "PGSSLKEY"];

/// `dsn` with `sslmode` and `sslrootcert` filled in from `PGSSLMODE` and `PGSSLROOTCERT`
/// (read through `env`) where the DSN names none: [`EnvTls::read`], then
/// [`EnvTls::apply`].
///
/// # Errors
///
/// As [`EnvTls::read`] and [`EnvTls::apply`].
pub fn with_env_defaults(dsn: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, Error> {
    EnvTls::read(env)?.apply(dsn)
}

/// `PGSSLMODE` and `PGSSLROOTCERT` as read (empty counts as unset, as in libpq).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvTls {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl EnvTls {
    /// Reads libpq's TLS variables through `env`.
    ///
    /// # Errors
    ///
    /// When `PGSSLMODE` is not a mode this crate honours, or `PGSSLCERT` or `PGSSLKEY` is
    /// set; the message starts with the variable's name.
    pub fn read(env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        for name in UNSUPPORTED {
            if set(name).is_some() {
                return Err(Error(format!(
                    "{name} is set, but client certificates are not supported (the connection could not present one); unset {name} and authenticate with a password"
                )));
            }
        }
        let sslmode = set("PGSSLMODE").map(|m| m.trim().to_owned());
        if let Some(mode) = &sslmode {
            SslMode::parse(mode).map_err(|e| Error(format!("PGSSLMODE: {e}")))?;
        }
        Ok(Self {
            sslmode,
            sslrootcert: set("PGSSLROOTCERT"),
        })
    }

    /// `dsn` with what it leaves out filled in. Works on both DSN forms (URL and
    /// `key=value`); a DSN that needs nothing added is returned as it is.
    ///
    /// # Errors
    ///
    /// When the `key=value` form does not parse.
    pub fn apply(&self, dsn: &str) -> Result<String, Error> {
        let split = dsn::split_tls_options(dsn)?;
        let mut added: Vec<(&str, &str)> = Vec::new();
        if let (None, Some(mode)) = (&split.sslmode, &self.sslmode) {
            added.push(("sslmode", mode));
        }
        if let (None, Some(file)) = (&split.sslrootcert, &self.sslrootcert) {
            added.push(("sslrootcert", file));
        }
        if added.is_empty() {
            return Ok(dsn.to_owned());
        }
        Ok(if dsn::is_url(dsn) {
            let encoded: Vec<String> = added
                .iter()
                .map(|(k, v)| {
                    let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                    format!("{k}={v}")
                })
                .collect();
            let sep = if dsn.contains('?') { '&' } else { '?' };
            format!("{dsn}{sep}{}", encoded.join("&"))
        } else {
            let quoted: Vec<String> = added
                .iter()
                .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect();
            format!("{} {}", dsn.trim_end(), quoted.join(" "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_environment_fills_in_what_the_dsn_does_not_say() {
        let e = [
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/etc/pg ca.pem"),
        ];
        assert_eq!(
            with_env_defaults("postgres://u@h/db", env(&e)).unwrap(),
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fpg+ca.pem"
        );
        assert_eq!(
            with_env_defaults("postgres://u@h/db?application_name=x", env(&e)).unwrap(),
            "postgres://u@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fpg+ca.pem"
        );
        assert_eq!(
            with_env_defaults("host=h dbname=db", env(&e)).unwrap(),
            "host=h dbname=db sslmode='verify-full' sslrootcert='/etc/pg ca.pem'"
        );
        let back = dsn::split_tls_options(&with_env_defaults("host=h dbname=db", env(&e)).unwrap())
            .unwrap();
        assert_eq!(back.sslrootcert.as_deref(), Some("/etc/pg ca.pem"));
        let back = dsn::split_tls_options(&with_env_defaults("postgres://h/db", env(&e)).unwrap())
            .unwrap();
        assert_eq!(back.sslrootcert.as_deref(), Some("/etc/pg ca.pem"));
    }

    #[test]
    fn the_dsn_wins_over_the_environment() {
        let e = [("PGSSLMODE", "disable"), ("PGSSLROOTCERT", "/env.pem")];
        assert_eq!(
            with_env_defaults(
                "postgres://h/db?sslmode=verify-ca&sslrootcert=/dsn.pem",
                env(&e)
            )
            .unwrap(),
            "postgres://h/db?sslmode=verify-ca&sslrootcert=/dsn.pem"
        );
        assert_eq!(
            with_env_defaults("postgres://h/db?sslmode=require", env(&e)).unwrap(),
            "postgres://h/db?sslmode=require&sslrootcert=%2Fenv.pem"
        );
        assert_eq!(
            with_env_defaults("postgres://h/db", env(&[])).unwrap(),
            "postgres://h/db"
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        let err = with_env_defaults("postgres://h/db", env(&[("PGSSLMODE", "allow")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("PGSSLMODE: sslmode=allow is not supported"),
            "{err}"
        );
        let err = with_env_defaults("postgres://h/db", env(&[("PGSSLMODE", "sometimes")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected disable, prefer"), "{err}");
        let err = with_env_defaults("postgres://h/db", env(&[("PGSSLCERT", "/c.pem")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PGSSLCERT is set, but client certificates are not supported"),
            "{err}"
        );
    }
}
