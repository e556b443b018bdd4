//! TLS for `amqps://` URLs: which CA the broker's certificate must chain to, and the
//! client certificate the kit presents when the broker asks for one.
//!
//! The files are read once per [`Broker`](super::Broker), when it connects; every later
//! reconnect uses what was read then.

use std::path::{Path, PathBuf};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};

use crate::Error;
use crate::config::Config;

/// `AMQP_TLS_CA_FILE`, `AMQP_TLS_CERT_FILE` and `AMQP_TLS_KEY_FILE`: paths only (the key
/// itself is read at connect time and never kept where a `Debug` could print it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AmqpTls {
    /// PEM file of the CA certificate(s) the broker's certificate must be signed by, in
    /// addition to the system's trust store. Unset: the system's trust store alone.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain) to present; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

/// The TLS settings are read with the others; the connection builds what it needs of them.
impl Config {
    /// The TLS files `amqps://` URLs connect with, for
    /// [`Broker::connect_with_tls`](crate::Broker::connect_with_tls).
    pub fn amqp_tls(&self) -> AmqpTls {
        AmqpTls::new(
            self.amqp_tls_ca_file.clone(),
            self.amqp_tls_cert_file.clone(),
            self.amqp_tls_key_file.clone(),
        )
    }
}

impl AmqpTls {
    /// Settings with these files.
    pub fn new(
        ca_file: Option<PathBuf>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Self {
        Self {
            ca_file,
            cert_file,
            key_file,
        }
    }

    /// Whether any file is set.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Reads the files into lapin's TLS settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when a file cannot be read, holds no PEM
    /// certificate (or key), or only one of the certificate and the key is set.
    pub(crate) fn load(&self) -> Result<OwnedTLSConfig, Error> {
        let cert_chain = match &self.ca_file {
            None => None,
            Some(path) => Some(read_pem(
                "AMQP_TLS_CA_FILE",
                path,
                "CERTIFICATE",
                "/etc/rabbitmq/ca.pem",
            )?),
        };
        let identity = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
                pem: read_pem(
                    "AMQP_TLS_CERT_FILE",
                    cert,
                    "CERTIFICATE",
                    "/etc/service/client.pem",
                )?
                .into_bytes(),
                key: read_pem(
                    "AMQP_TLS_KEY_FILE",
                    key,
                    "PRIVATE KEY",
                    "/etc/service/client.key",
                )?
                .into_bytes(),
            }),
            (Some(cert), None) => {
                return Err(crate::config::setting_error(
                    "AMQP_TLS_CERT_FILE",
                    &cert.display().to_string(),
                    "needs AMQP_TLS_KEY_FILE (the certificate's private key) as well",
                    "/etc/service/client.pem",
                ));
            }
            (None, Some(key)) => {
                return Err(crate::config::setting_error(
                    "AMQP_TLS_KEY_FILE",
                    &key.display().to_string(),
                    "needs AMQP_TLS_CERT_FILE (the client certificate) as well",
                    "/etc/service/client.key",
                ));
            }
        };
        Ok(OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }
}

/// A failed `amqps://` connect with what it most likely means: rustls names the problem
/// ("invalid peer certificate: UnknownIssuer") but not where to look.
pub(crate) fn explain(e: lapin::Error) -> lapin::Error {
    let lapin::ErrorKind::IOError(io) = e.kind() else {
        return e;
    };
    use std::io::ErrorKind as K;
    if matches!(
        io.kind(),
        K::ConnectionRefused | K::AddrNotAvailable | K::TimedOut | K::HostUnreachable
    ) {
        return e;
    }
    let text = io.to_string();
    let hint = if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        "the broker's certificate is not signed by the CA in AMQP_TLS_CA_FILE (nor by one the system trusts)"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        "the broker's certificate does not name the host in AMQP_URL"
    } else if text.contains("CertificateRequired") {
        "the broker asks for a client certificate: set AMQP_TLS_CERT_FILE and AMQP_TLS_KEY_FILE"
    } else if text.contains("BadCertificate") || text.contains("UnknownCA") {
        "the broker refused the client certificate in AMQP_TLS_CERT_FILE"
    } else if text.contains("Expired") || text.contains("NotValidYet") {
        "the broker's certificate is outside its validity period"
    } else if text.contains("corrupt message")
        || text.contains("InvalidContentType")
        || io.kind() == K::UnexpectedEof
        || io.kind() == K::ConnectionReset
    {
        "the port did not answer in TLS: is it the broker's TLS listener (RabbitMQ's is usually 5671)? amqps:// never falls back to plaintext"
    } else {
        "the TLS handshake with the broker failed"
    };
    std::io::Error::new(io.kind(), format!("TLS: {text} ({hint})")).into()
}

/// The text of PEM file `path`, which must hold at least one block whose label ends in
/// `label` (`CERTIFICATE`; `PRIVATE KEY` also matches `RSA PRIVATE KEY`, `EC PRIVATE KEY`).
fn read_pem(name: &str, path: &Path, label: &str, example: &str) -> Result<String, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        crate::config::setting_error(name, &shown, &format!("cannot read it ({e})"), example)
    })?;
    let has_block = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .any(|l| l.trim_end_matches('-').ends_with(label));
    if !has_block {
        return Err(crate::config::setting_error(
            name,
            &shown,
            &format!("holds no PEM block -----BEGIN {label}-----"),
            example,
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wk-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n";

    #[test]
    fn reads_ca_and_identity() {
        let tls = AmqpTls::new(
            Some(file("ca.pem", CERT)),
            Some(file("c.pem", CERT)),
            Some(file("c.key", KEY)),
        );
        let loaded = tls.load().unwrap();
        assert_eq!(loaded.cert_chain.as_deref(), Some(CERT));
        assert!(matches!(loaded.identity, Some(OwnedIdentity::PKCS8 { .. })));
        assert_eq!(
            AmqpTls::default().load().unwrap(),
            OwnedTLSConfig::default()
        );
    }

    #[test]
    fn names_the_variable_and_the_problem() {
        let m = AmqpTls::new(Some("/nonexistent/ca.pem".into()), None, None)
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with(
                "configuration: AMQP_TLS_CA_FILE=\"/nonexistent/ca.pem\": cannot read it"
            ),
            "{m}"
        );
        let m = AmqpTls::new(Some(file("key-as-ca.pem", KEY)), None, None)
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("holds no PEM block -----BEGIN CERTIFICATE-----"),
            "{m}"
        );
        let m = AmqpTls::new(None, Some(file("only.pem", CERT)), None)
            .load()
            .unwrap_err()
            .to_string();
        assert!(m.contains("needs AMQP_TLS_KEY_FILE"), "{m}");
    }
}
