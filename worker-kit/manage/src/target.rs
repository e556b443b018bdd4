//! Servers, target databases and shadow databases.

use std::str::FromStr;

use anyhow::{Context, anyhow};
use tokio_postgres::{Client, Config, NoTls};

/// A PostgreSQL server (a DSN without its database).
#[derive(Clone)]
pub struct Server {
    config: Config,
    shown: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `dsn` with its password hidden.
pub(crate) fn redact(dsn: &str) -> String {
    match url::Url::parse(dsn) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<DSN hidden>".to_owned(),
    }
}

/// The service's database DSN: `explicit`, else `DB_MAIN_DSN`, else the database named
/// after the service on the server the libpq variables name.
pub(crate) fn service_dsn(explicit: Option<&str>, service: &str) -> String {
    if let Some(d) = explicit {
        return d.to_owned();
    }
    if let Ok(d) = std::env::var("DB_MAIN_DSN") {
        return d;
    }
    let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut u = url::Url::parse("postgres://localhost/").expect("static URL");
    let _ = u.set_host(Some(&get("PGHOST", "127.0.0.1")));
    let _ = u.set_port(get("PGPORT", "5432").parse().ok());
    let _ = u.set_username(&get("PGUSER", "postgres"));
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        let _ = u.set_password(Some(&pw));
    }
    u.set_path(service);
    u.to_string()
}

impl Server {
    /// The server of `dsn`, and the database it names.
    ///
    /// # Errors
    ///
    /// When `dsn` does not parse or names no database.
    pub fn from_dsn(dsn: &str) -> anyhow::Result<(Self, String)> {
        let shown = redact(dsn);
        let config =
            Config::from_str(dsn).map_err(|e| anyhow!("{shown} is not a PostgreSQL DSN: {e}"))?;
        let db = config
            .get_dbname()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{shown} names no database"))?;
        let shown_server = shown
            .rsplit_once('/')
            .map_or(shown.clone(), |(s, _)| s.to_owned());
        Ok((
            Self {
                config,
                shown: shown_server,
            },
            db,
        ))
    }

    /// A connection to database `db` on this server.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses.
    pub async fn connect(&self, db: &str) -> anyhow::Result<Client> {
        let mut config = self.config.clone();
        config.dbname(db);
        config.application_name("manage");
        config.connect_timeout(std::time::Duration::from_secs(10));
        let (client, conn) = config
            .connect(NoTls)
            .await
            .map_err(|e| anyhow!("cannot connect to {}/{db}: {}", self.shown, pg_message(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub(crate) async fn admin(&self) -> anyhow::Result<Client> {
        self.connect("postgres").await
    }

    /// Whether database `db` exists.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn exists(&self, db: &str) -> anyhow::Result<bool> {
        let admin = self.admin().await?;
        let row = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .await?;
        Ok(row.is_some())
    }

    /// Creates database `db`.
    ///
    /// # Errors
    ///
    /// When the server refuses (e.g. no CREATEDB privilege).
    pub async fn create(&self, db: &str) -> anyhow::Result<()> {
        self.admin()
            .await?
            .batch_execute(&format!("CREATE DATABASE {}", ident(db)))
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot create database {db} on {}: {}",
                    self.shown,
                    pg_message(&e)
                )
            })
    }

    /// Drops database `db` if it exists, closing its connections.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn drop_db(&self, db: &str) -> anyhow::Result<()> {
        self.admin()
            .await?
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(db)
            ))
            .await
            .map_err(|e| anyhow!("cannot drop database {db}: {}", pg_message(&e)))
    }

    /// The server, for messages (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// A scratch database where model files or a dump are loaded to be read back. One per
/// target and role (`<db>__manage_models`, `<db>__manage_dump`), kept for the next run.
pub struct Shadow {
    /// Its server.
    pub server: Server,
    /// Its name.
    pub name: String,
}

fn shadow_name(for_db: &str, role: &str) -> String {
    let mut name = format!("{for_db}__manage_{role}");
    name.truncate(63);
    name
}

impl Shadow {
    /// The kept shadow of `for_db` and `role` if it holds exactly `fingerprint`.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn existing(
        server: &Server,
        for_db: &str,
        role: &str,
        fingerprint: &str,
    ) -> anyhow::Result<Option<Self>> {
        let name = shadow_name(for_db, role);
        let row = server
            .admin()
            .await?
            .query_opt(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await?;
        let holds: Option<String> = row.and_then(|r| r.get(0));
        Ok((holds.as_deref() == Some(fingerprint)).then(|| Self {
            server: server.clone(),
            name,
        }))
    }

    /// Records what the shadow now holds.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn mark(&self, fingerprint: &str) -> anyhow::Result<()> {
        let sql = format!(
            "COMMENT ON DATABASE {} IS '{}'",
            ident(&self.name),
            fingerprint.replace('\'', "''")
        );
        self.server.admin().await?.batch_execute(&sql).await?;
        Ok(())
    }

    /// Drops the shadows kept for `for_db`.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn drop_all(server: &Server, for_db: &str) -> anyhow::Result<()> {
        for role in ["models", "dump"] {
            server.drop_db(&shadow_name(for_db, role)).await?;
        }
        Ok(())
    }

    /// A fresh (reset) shadow database named after `for_db` and `role`.
    ///
    /// # Errors
    ///
    /// When it cannot be created.
    pub async fn create(server: &Server, for_db: &str, role: &str) -> anyhow::Result<Self> {
        let name = shadow_name(for_db, role);
        server.drop_db(&name).await?;
        server
            .create(&name)
            .await
            .context("creating the shadow database")?;
        Ok(Self {
            server: server.clone(),
            name,
        })
    }

    /// A connection to it.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        self.server.connect(&self.name).await
    }

    /// Drops it.
    pub async fn drop(self) {
        if let Err(e) = self.server.drop_db(&self.name).await {
            eprintln!(
                "manage: could not drop the shadow database {}: {e:#}",
                self.name
            );
        }
    }
}

/// A quoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The server's words for an error (tokio-postgres alone says only "db error").
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = db.message().to_owned();
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string()),
    }
}
