//! `sslmode` and `sslrootcert` against the real local PostgreSQL (Debian's default
//! `ssl = on` with the snakeoil certificate, whose only name is `localhost`), and against
//! the same server behind a proxy that says it cannot do TLS.

use std::path::PathBuf;

use e2e::pg::server_dsn;
use e2e::tls::{TestCa, pg_without_tls, readable};
use worker_kit::db::{Client, DbConfig};

/// The test server's DSN with `query` appended (`host` swapped when `host` is given).
fn dsn(host: Option<&str>, query: &str) -> String {
    let base = server_dsn("postgres");
    let base = match host {
        Some(h) => base.replacen("127.0.0.1", h, 1),
        None => base,
    };
    format!("{base}?{query}")
}

/// Whether the server offers TLS, and the certificate file it serves.
async fn server_tls() -> (bool, PathBuf) {
    let client = Client::new("main", &DbConfig::new(dsn(None, "sslmode=disable"))).unwrap();
    let conn = client.connection().await.unwrap();
    let ssl: String = conn.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let file: String = conn
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    (ssl == "on", PathBuf::from(file))
}

/// Connects through the kit's pool and asks the server whether the session is encrypted.
async fn encrypted(dsn: &str) -> Result<bool, String> {
    let client = Client::new("main", &DbConfig::new(dsn)).map_err(|e| e.to_string())?;
    let conn = client.connection().await.map_err(|e| e.to_string())?;
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn sslmode_decides_whether_the_session_is_encrypted() {
    let (ssl_on, _) = server_tls().await;
    if !ssl_on {
        // Without TLS on the server, require must be refused (checked below with the
        // proxy); nothing here can be encrypted.
        let err = encrypted(&dsn(None, "sslmode=require")).await.unwrap_err();
        assert!(err.contains("server does not support TLS"), "{err}");
        return;
    }
    assert!(encrypted(&dsn(None, "sslmode=require")).await.unwrap());
    assert!(!encrypted(&dsn(None, "sslmode=disable")).await.unwrap());
    // libpq's default, prefer: TLS when offered.
    assert!(encrypted(&server_dsn("postgres")).await.unwrap());
}

#[tokio::test]
async fn verify_full_checks_the_ca_and_the_host_name() {
    let (ssl_on, cert) = server_tls().await;
    assert!(
        ssl_on && readable(&cert),
        "these checks need the local server's ssl = on and its certificate readable ({})",
        cert.display()
    );
    let root = format!("sslrootcert={}", cert.display());
    // The certificate names localhost; connecting by that name (to the same address).
    let ok = dsn(
        Some("localhost"),
        &format!("hostaddr=127.0.0.1&sslmode=verify-full&{root}"),
    );
    assert!(encrypted(&ok).await.unwrap());
    // By address, the name does not match: verify-full refuses, verify-ca does not care.
    let err = encrypted(&dsn(None, &format!("sslmode=verify-full&{root}")))
        .await
        .unwrap_err();
    assert!(
        err.contains("not valid for name \"127.0.0.1\"") && err.contains("does not name the host"),
        "names the certificate problem: {err}"
    );
    assert!(
        encrypted(&dsn(None, &format!("sslmode=verify-ca&{root}")))
            .await
            .unwrap()
    );

    // A CA that did not sign the server's certificate.
    let other = TestCa::new("pg-other-ca");
    for mode in ["verify-ca", "verify-full", "require"] {
        let err = encrypted(&dsn(
            Some("localhost"),
            &format!(
                "hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
                other.ca_file().display()
            ),
        ))
        .await
        .unwrap_err();
        assert!(
            err.contains("UnknownIssuer")
                && err.contains("not signed by a CA in the DSN's sslrootcert"),
            "sslmode={mode}: {err}"
        );
    }
}

#[tokio::test]
async fn verify_modes_need_a_ca_and_unknown_modes_are_refused() {
    let err = Client::new("main", &DbConfig::new(dsn(None, "sslmode=verify-full")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sslmode=verify-full needs sslrootcert"),
        "{err}"
    );
    let err = DbConfig::from_vars(
        "main",
        "svc",
        [("DB_MAIN_DSN".to_owned(), dsn(None, "sslmode=allow"))],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sslmode=allow is not supported"), "{err}");
}

#[tokio::test]
async fn tls_asked_of_a_server_without_it_is_refused_clearly() {
    let (addr, proxy) = pg_without_tls("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = |query: &str| {
        dsn(None, query).replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", addr.port()), 1)
    };
    let ca = TestCa::new("pg-any-ca");
    for mode in ["require", "verify-ca"] {
        let query = if mode == "require" {
            "sslmode=require".to_owned()
        } else {
            format!("sslmode=verify-ca&sslrootcert={}", ca.ca_file().display())
        };
        let err = encrypted(&via_proxy(&query)).await.unwrap_err();
        assert!(
            err.contains("server does not support TLS") && err.contains("sslmode asks for TLS"),
            "sslmode={mode}: {err}"
        );
    }
    // prefer falls back to plaintext, as libpq does; disable never asks.
    assert!(!encrypted(&via_proxy("sslmode=prefer")).await.unwrap());
    assert!(!encrypted(&via_proxy("sslmode=disable")).await.unwrap());
    proxy.abort();
}

/// What TLS costs a connection and a round trip on this machine (ignored: a measurement,
/// run with `--ignored --nocapture`).
#[tokio::test]
#[ignore = "measurement"]
async fn measure_tls_cost() {
    const CONNECTS: u32 = 20;
    const QUERIES: u32 = 2_000;
    for mode in ["disable", "require"] {
        let target =
            worker_kit_pg_tls::Target::from_dsn(&dsn(None, &format!("sslmode={mode}"))).unwrap();
        let started = std::time::Instant::now();
        let mut last = None;
        for _ in 0..CONNECTS {
            let (client, conn) = target.config.connect(target.tls.clone()).await.unwrap();
            tokio::spawn(conn);
            last = Some(client);
        }
        let per_connect = started.elapsed() / CONNECTS;
        let client = last.unwrap();
        let ssl: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(ssl, mode == "require");
        let started = std::time::Instant::now();
        for _ in 0..QUERIES {
            client.query_one("SELECT 1", &[]).await.unwrap();
        }
        let per_query = started.elapsed() / QUERIES;
        println!("sslmode={mode}: connect {per_connect:?}, SELECT 1 round trip {per_query:?}");
    }
}

/// `DbConfig` read as a service reads it: no `DB_MAIN_DSN`, the libpq variables naming the
/// local server (the test's own `PG*` settings kept), plus `extra`.
fn from_libpq_vars(extra: &[(&str, &str)]) -> Result<DbConfig, String> {
    let mut vars: Vec<(String, String)> = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    DbConfig::from_vars("main", "postgres", vars).map_err(|e| e.to_string())
}

async fn session_encrypted(config: &DbConfig) -> Result<bool, String> {
    let client = Client::new("main", config).map_err(|e| e.to_string())?;
    let conn = client.connection().await.map_err(|e| e.to_string())?;
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn pgsslmode_and_pgsslrootcert_are_honoured_as_libpq_does() {
    let (ssl_on, cert) = server_tls().await;
    assert!(ssl_on, "this test needs the local server's ssl = on");
    // disable: plaintext, though the server offers TLS (prefer, the default, would take it).
    let plain = from_libpq_vars(&[("PGSSLMODE", "disable")]).unwrap();
    assert!(!session_encrypted(&plain).await.unwrap());
    assert!(
        session_encrypted(&from_libpq_vars(&[]).unwrap())
            .await
            .unwrap()
    );
    // verify-full with no CA to verify against is refused when the settings are read.
    let err = from_libpq_vars(&[("PGSSLMODE", "verify-full")]).unwrap_err();
    assert!(
        err.contains("sslmode=verify-full needs sslrootcert") && err.contains("PGSSLROOTCERT"),
        "{err}"
    );
    // verify-full with the server's CA and the name on its certificate.
    if readable(&cert) {
        let verified = from_libpq_vars(&[
            ("PGHOST", "localhost"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", &cert.display().to_string()),
        ])
        .unwrap();
        assert!(session_encrypted(&verified).await.unwrap());
    }
    // The DSN's own sslmode wins over PGSSLMODE.
    let own = DbConfig::from_vars(
        "main",
        "postgres",
        [
            ("DB_MAIN_DSN".to_owned(), dsn(None, "sslmode=disable")),
            ("PGSSLMODE".to_owned(), "verify-full".to_owned()),
        ],
    )
    .unwrap();
    assert!(!session_encrypted(&own).await.unwrap());
    // What cannot be honoured is refused by name, not ignored.
    let err = from_libpq_vars(&[("PGSSLMODE", "allow")]).unwrap_err();
    assert!(
        err.contains("PGSSLMODE: sslmode=allow is not supported"),
        "{err}"
    );
    let err = from_libpq_vars(&[("PGSSLCERT", "/etc/client.pem")]).unwrap_err();
    assert!(
        err.contains("PGSSLCERT is set, but client certificates are not supported"),
        "{err}"
    );
}

#[tokio::test]
async fn pgsslmode_verify_full_against_a_server_without_tls_fails_clearly() {
    let (addr, proxy) = pg_without_tls("127.0.0.1:5432".parse().unwrap()).await;
    let ca = TestCa::new("pg-env-ca");
    let port = addr.port().to_string();
    let ca_file = ca.ca_file().display().to_string();
    let config = from_libpq_vars(&[
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", &port),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &ca_file),
    ])
    .unwrap();
    let err = session_encrypted(&config).await.unwrap_err();
    assert!(
        err.contains("server does not support TLS") && err.contains("sslmode asks for TLS"),
        "{err}"
    );
    let plain = from_libpq_vars(&[
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", &port),
        ("PGSSLMODE", "disable"),
    ])
    .unwrap();
    assert!(!session_encrypted(&plain).await.unwrap());
    proxy.abort();
}
