//! PostgreSQL DSNs read the way libpq reads their TLS settings, connected through rustls.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` and never checks a certificate;
//! libpq also has `verify-ca` and `verify-full`, and `sslrootcert` naming the CA file. This
//! crate takes a DSN with any of them, hands tokio-postgres the rest, and builds the rustls
//! connector that checks what the mode asks for:
//!
//! | `sslmode` | TLS | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it, else plaintext | not checked |
//! | `require` | always; refused when the server cannot | not checked; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca` | always | signed by a CA in `sslrootcert` |
//! | `verify-full` | always | signed by a CA in `sslrootcert` and issued for the host name |
//!
//! As in libpq, `prefer` and `require` without a CA protect against eavesdropping only,
//! not against a peer that impersonates the server.
//!
//! libpq's `PGSSLMODE` and `PGSSLROOTCERT` fill in what a DSN does not say
//! ([`with_env_defaults`]). Not supported, and refused with a message saying so rather than
//! ignored: `sslmode=allow` (plaintext first, TLS only if the server insists: tokio-postgres
//! cannot fall forward), and client certificates (`PGSSLCERT`, `PGSSLKEY`).

mod dsn;
mod env;
mod verify;

use std::path::PathBuf;

pub use env::{EnvTls, with_env_defaults};
pub use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values this crate honours (`allow` is not one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, without checking its certificate; plaintext otherwise.
    Prefer,
    /// TLS or no connection; the certificate is checked only when `sslrootcert` is given.
    Require,
    /// TLS with a certificate signed by a CA in `sslrootcert`.
    VerifyCa,
    /// As [`SslMode::VerifyCa`], and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, Error> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => {
                return Err(Error(
                    "sslmode=allow is not supported (it tries plaintext first and TLS only if the server insists, which the connection cannot do): use prefer (TLS when the server offers it), require or verify-full; or disable on a trusted network".into(),
                ));
            }
            other => {
                return Err(Error(format!(
                    "sslmode={other} is not supported: expected disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }

    /// What tokio-postgres is told: it only negotiates, the connector does the checking.
    fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            Self::Disable => Pg::Disable,
            Self::Prefer => Pg::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Pg::Require,
        }
    }
}

/// Why a DSN's TLS settings were refused. The message never quotes the DSN (it may hold a
/// password); callers add the redacted DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// A parsed DSN and the TLS connector its settings ask for.
#[derive(Clone)]
pub struct Target {
    /// What tokio-postgres connects with (`sslmode` mapped to what it knows).
    pub config: tokio_postgres::Config,
    /// Hand this to `config.connect` or to the pool manager.
    pub tls: MakeRustlsConnect,
    /// The DSN's `sslmode` (`prefer` when it names none, as in libpq).
    pub mode: SslMode,
    /// The DSN's `sslrootcert`.
    pub root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for Target {
    /// Leaves out `config`, whose `Debug` would show the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Parses `dsn` (URL or `key=value` form) and reads its `sslrootcert`.
    ///
    /// # Errors
    ///
    /// When the DSN does not parse, names an unknown `sslmode`, asks for `verify-ca` or
    /// `verify-full` without `sslrootcert`, or the CA file cannot be read or holds no
    /// certificate.
    pub fn from_dsn(dsn: &str) -> Result<Self, Error> {
        let split = dsn::split_tls_options(dsn)?;
        let mode = match split.sslmode.as_deref() {
            None => SslMode::Prefer,
            Some(v) => SslMode::parse(v)?,
        };
        let mut config: tokio_postgres::Config = split
            .rest
            .parse()
            .map_err(|e| Error(format!("not a PostgreSQL DSN ({})", chain(&e))))?;
        config.ssl_mode(mode.negotiation());
        let root_cert = split.sslrootcert.map(PathBuf::from);
        let client = verify::client_config(mode, root_cert.as_deref())?;
        Ok(Self {
            config,
            tls: MakeRustlsConnect::new(client),
            mode,
            root_cert,
        })
    }
}

/// `e` with every cause, `: `-separated, and a hint for the TLS failures whose words alone
/// do not say what to do. tokio-postgres's own `Display` stops at "error performing TLS
/// handshake" and leaves the reason in the source chain.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let text = chain(e);
    let hint = if text.contains("server does not support TLS") {
        " (the DSN's sslmode asks for TLS and the server, or a proxy in between, answered that it cannot do it; enable ssl on the server or, on a trusted network only, use sslmode=prefer or disable)"
    } else if text.contains("UnknownIssuer") {
        " (the server's certificate is not signed by a CA in the DSN's sslrootcert)"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        " (the server's certificate does not name the host in the DSN; use that name, or sslmode=verify-ca to check the CA only)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some errors repeat their source in their own words; say it once.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
