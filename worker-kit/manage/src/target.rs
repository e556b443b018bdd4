//! Servers, target databases, the per-target lock, and shadow databases.

use anyhow::{Context, anyhow, bail};
use tokio_postgres::{Client, Config};
use worker_kit_pg_tls::{EnvTls, MakeRustlsConnect, Target};

/// A PostgreSQL server (a DSN without its database).
#[derive(Clone)]
pub struct Server {
    config: Config,
    /// What the DSN's `sslmode` and `sslrootcert` ask for.
    tls: MakeRustlsConnect,
    shown: String,
    /// One session in the maintenance database, opened on first use and shared by clones:
    /// a run needs it for several short steps, and each new session costs a backend.
    admin: std::sync::Arc<tokio::sync::OnceCell<Client>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `dsn` with its secrets hidden: the password, and any `password` query parameter.
pub(crate) fn redact(dsn: &str) -> String {
    match url::Url::parse(dsn) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let hidden = k.eq_ignore_ascii_case("password") || k == "sslpassword";
                    (
                        k.into_owned(),
                        if hidden { "***".into() } else { v.into_owned() },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
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
    /// The server of `dsn`, and the database it names. As in libpq, `PGSSLMODE` and
    /// `PGSSLROOTCERT` give the `sslmode` and `sslrootcert` of a DSN that names none.
    ///
    /// # Errors
    ///
    /// When `dsn` does not parse or names no database, or the TLS settings cannot be
    /// honoured (`sslmode=allow`, `verify-*` without a CA, `PGSSLCERT`/`PGSSLKEY`).
    pub fn from_dsn(dsn: &str) -> anyhow::Result<(Self, String)> {
        // libpq's rule: PGSSLMODE and PGSSLROOTCERT fill in what the DSN leaves out.
        let env = EnvTls::read(|k| std::env::var(k).ok()).map_err(|e| anyhow!("{e}"))?;
        let dsn = &env
            .apply(dsn)
            .map_err(|e| anyhow!("{}: {e}", redact(dsn)))?;
        let shown = redact(dsn);
        let Target { config, tls, .. } =
            Target::from_dsn(dsn).map_err(|e| anyhow!("{shown}: {e}"))?;
        let db = config
            .get_dbname()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{shown} names no database"))?;
        let shown_server = shown
            .split('?')
            .next()
            .and_then(|s| s.rsplit_once('/'))
            .map_or(shown.clone(), |(s, _)| s.to_owned());
        Ok((
            Self {
                config,
                tls,
                shown: shown_server,
                admin: Default::default(),
            },
            db,
        ))
    }

    /// The role this server's DSN logs in as.
    pub(crate) fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    /// The same server, logging in as `user` with `password`.
    pub(crate) fn as_user(&self, user: &str, password: Option<&str>) -> Self {
        let mut config = self.config.clone();
        config.user(user);
        if let Some(p) = password {
            config.password(p);
        }
        Self {
            config,
            tls: self.tls.clone(),
            shown: self.shown.clone(),
            admin: Default::default(),
        }
    }

    /// A connection to database `db` on this server.
    ///
    /// Every session manage opens has `standard_conforming_strings` on, whatever the
    /// database or role sets: the plan's literals are written for it.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses.
    pub async fn connect(&self, db: &str) -> anyhow::Result<Client> {
        let mut config = self.config.clone();
        config.dbname(db);
        config.application_name("manage");
        config.connect_timeout(std::time::Duration::from_secs(10));
        let options = format!(
            "{} -c standard_conforming_strings=on",
            self.config.get_options().unwrap_or("")
        );
        config.options(options.trim_start());
        let (client, conn) = config
            .connect(self.tls.clone())
            .await
            .map_err(|e| anyhow!("cannot connect to {}/{db}: {}", self.shown, pg_message(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub(crate) async fn admin(&self) -> anyhow::Result<&Client> {
        self.admin
            .get_or_try_init(|| self.connect("postgres"))
            .await
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

    /// Drops database `db` if it exists, closing its connections. Manage itself drops
    /// only shadows, through [`Shadow`], which checks first that the database is one.
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

/// An advisory lock on one target database, held while the value lives. Two syncs of one
/// target would otherwise race: each could drop the shadow the other is reading, and
/// both would apply the same plan.
pub struct TargetLock {
    _session: Client,
}

impl TargetLock {
    /// Takes the lock on `db`, or fails at once when another manage run holds it.
    ///
    /// # Errors
    ///
    /// When another run holds it, or the server cannot be reached.
    pub async fn take(server: &Server, db: &str) -> anyhow::Result<Self> {
        // Advisory locks are per database: every run takes it in the maintenance
        // database, so the target itself need not exist yet.
        let session = server.connect("postgres").await?;
        let got: bool = session
            .query_one(
                "SELECT pg_try_advisory_lock($1::int, hashtext($2))",
                &[&crate::LOCK_CLASS, &db],
            )
            .await?
            .get(0);
        if !got {
            bail!(
                "another manage run is working on {db} (it holds the advisory lock); wait for it to finish"
            );
        }
        Ok(Self { _session: session })
    }
}

/// The role that model and dump SQL runs as in shadows: never the target's role, which is
/// often a superuser. It has no superuser, no `pg_execute_server_program`, no file access;
/// it owns the shadows and nothing else.
#[derive(Clone)]
pub struct Loader {
    /// The server, logging in as the loader role.
    server: Server,
    /// The role.
    pub role: String,
}

/// The role manage creates when no `--shadow-url` names one.
pub const SHADOW_ROLE: &str = "manage_shadow";

impl Loader {
    /// The loader role: the one `shadow_url` logs in as, else [`SHADOW_ROLE`] (created when
    /// missing, given a fresh random password each run). Refuses a role with powers that
    /// reach outside its own databases.
    ///
    /// # Errors
    ///
    /// When the role cannot be created, or it is too powerful.
    pub async fn prepare(admin: &Server, shadow_url: Option<&str>) -> anyhow::Result<Self> {
        let session = admin.admin().await?;
        let loader = match shadow_url {
            Some(url) => {
                let (server, _) = Server::from_dsn(url)?;
                let role = server.user().to_owned();
                Self { server, role }
            }
            None => Self::managed(admin, session).await?,
        };
        let row = session
            .query_opt(
                "SELECT r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolreplication \
                        OR pg_has_role(r.oid, 'pg_execute_server_program', 'MEMBER') \
                        OR pg_has_role(r.oid, 'pg_write_server_files', 'MEMBER') \
                        OR pg_has_role(r.oid, 'pg_read_server_files', 'MEMBER') \
                 FROM pg_roles r WHERE r.rolname = $1",
                &[&loader.role],
            )
            .await?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => bail!("the shadow role {} does not exist", loader.role),
            Some(true) => bail!(
                "the shadow role {} is too powerful to run model SQL (superuser, CREATEROLE, \
                 BYPASSRLS, replication, or server file/program access): give --shadow-url a role without them",
                loader.role
            ),
            Some(false) => Ok(loader),
        }
    }

    async fn managed(admin: &Server, session: &Client) -> anyhow::Result<Self> {
        let exists = session
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&SHADOW_ROLE])
            .await?
            .is_some();
        if !exists {
            let created = session
                .batch_execute(&format!(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
                     NOREPLICATION NOBYPASSRLS",
                    ident(SHADOW_ROLE)
                ))
                .await;
            // Another run may have created it meanwhile.
            if let Err(e) = created
                && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT)
            {
                bail!(
                    "cannot create the shadow role {SHADOW_ROLE} ({}): create it, or give --shadow-url",
                    pg_message(&e)
                );
            }
        }
        let password: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
                .collect()
        };
        Ok(Self {
            server: admin.as_user(SHADOW_ROLE, Some(&password)),
            role: SHADOW_ROLE.to_owned(),
        })
    }

    /// A session of the loader role in database `db`.
    async fn connect(&self, admin: &Server, db: &str) -> anyhow::Result<Client> {
        if self.role != SHADOW_ROLE {
            return self.server.connect(db).await;
        }
        // Each run gives the managed role a password of its own: set it and log in under
        // a server-wide lock, so that two runs never interleave the two steps.
        let session = admin.admin().await?;
        session
            .execute("SELECT pg_advisory_lock($1::int, 0)", &[&crate::LOCK_CLASS])
            .await?;
        let reset = self.reset_password(session).await;
        let client = match reset {
            Ok(()) => self.server.connect(db).await,
            Err(e) => Err(e),
        };
        let _ = session
            .execute(
                "SELECT pg_advisory_unlock($1::int, 0)",
                &[&crate::LOCK_CLASS],
            )
            .await;
        client
    }

    async fn reset_password(&self, session: &Client) -> anyhow::Result<()> {
        let password = self
            .server
            .config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        // Only the SCRAM verifier goes over the wire, so a server that logs DDL never
        // holds the password.
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        session
            .batch_execute(&format!(
                "ALTER ROLE {} LOGIN INHERIT PASSWORD {}",
                ident(SHADOW_ROLE),
                literal(&verifier)
            ))
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot set up the shadow role {SHADOW_ROLE}: {}",
                    pg_message(&e)
                )
            })
    }
}

/// A scratch database where model files or a dump are loaded, as the [`Loader`] role, to be
/// read back. Its name never depends on the target's length (so it is never the target's
/// own name, nor another shadow's); its comment marks it as manage's, and nothing without
/// that mark is ever dropped.
pub struct Shadow {
    /// Its server (as the target's role, for creating and dropping).
    pub server: Server,
    /// Its name.
    pub name: String,
    loader: Loader,
}

/// What every shadow's comment starts with.
const MARK: &str = "manage shadow";

/// `sha256(text)` in hex.
pub(crate) fn digest(text: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Shadow {
    /// The name of the kept shadow of target `for_db` in `role` (`models`, `dump`):
    /// `manage_shadow_<role>_<hash of the target's name>`, 50 bytes at most.
    pub fn name_for(for_db: &str, role: &str) -> String {
        let mut role = role.to_owned();
        role.truncate(10);
        format!("manage_shadow_{role}_{}", &digest(for_db.as_bytes())[..24])
    }

    /// The kept shadow of `for_db` and `role` if it holds exactly `fingerprint` and the
    /// role manage administers the server as owns it. The mark that says what it holds is
    /// the database's comment, which only its owner may write: the loader role, which runs
    /// every target's model SQL, cannot mark another target's shadow as current.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn existing(
        server: &Server,
        loader: &Loader,
        for_db: &str,
        role: &str,
        fingerprint: &str,
    ) -> anyhow::Result<Option<Self>> {
        let name = Self::name_for(for_db, role);
        let row = server
            .admin()
            .await?
            .query_opt(
                "SELECT shobj_description(oid, 'pg_database'), pg_get_userbyid(datdba) \
                 FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let holds: Option<String> = row.get(0);
        let owner: String = row.get(1);
        let reusable = holds.as_deref() == Some(&mark(for_db, fingerprint))
            && owner == server.user()
            && owner != loader.role;
        Ok(reusable.then(|| Self {
            server: server.clone(),
            name,
            loader: loader.clone(),
        }))
    }

    /// A fresh kept shadow of `for_db` in `role` (dropping the previous one).
    ///
    /// # Errors
    ///
    /// When a database of that name exists and is not a shadow, or the server refuses.
    pub async fn create(
        server: &Server,
        loader: &Loader,
        for_db: &str,
        role: &str,
    ) -> anyhow::Result<Self> {
        Self::create_named(server, loader, Self::name_for(for_db, role), for_db).await
    }

    /// A fresh shadow for one run (`manage diff`, `manage pending`): the caller drops it.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn temporary(server: &Server, loader: &Loader, role: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!("{role} {} {nanos}", std::process::id());
        let name = Self::name_for(&seed, "run");
        Self::create_named(server, loader, name, &seed).await
    }

    async fn create_named(
        server: &Server,
        loader: &Loader,
        name: String,
        for_db: &str,
    ) -> anyhow::Result<Self> {
        let shadow = Self {
            server: server.clone(),
            name,
            loader: loader.clone(),
        };
        shadow.drop_checked().await?;
        let admin = server.admin().await?;
        // Owned by the administering role, not the loader: the owner alone may change the
        // comment that marks what a shadow holds. The loader gets what loading needs: to
        // connect, to create schemas, and `public` as its own (owned, so that no grant
        // to it shows up as a difference).
        admin
            .batch_execute(&format!("CREATE DATABASE {}", ident(&shadow.name)))
            .await
            .map_err(|e| anyhow!("cannot create database {}: {}", shadow.name, pg_message(&e)))
            .context("creating the shadow database")?;
        admin
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {0} FROM PUBLIC;                  GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {0} TO {2};                  COMMENT ON DATABASE {0} IS {1}",
                ident(&shadow.name),
                literal(&mark(for_db, "loading")),
                ident(&loader.role)
            ))
            .await?;
        server
            .connect(&shadow.name)
            .await?
            .batch_execute(&format!(
                "ALTER SCHEMA public OWNER TO {}",
                ident(&loader.role)
            ))
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot give the shadow's public schema to the shadow role {}: {}                      (the role manage logs in as must be a member of it)",
                    loader.role,
                    pg_message(&e)
                )
            })?;
        Ok(shadow)
    }

    /// Drops the database of this shadow's name if it is one of manage's shadows; refuses
    /// (and drops nothing) when a database of that name is not.
    async fn drop_checked(&self) -> anyhow::Result<()> {
        let admin = self.server.admin().await?;
        let row = admin
            .query_opt(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1",
                &[&self.name],
            )
            .await?;
        let Some(row) = row else { return Ok(()) };
        let comment: String = row.get(0);
        if !comment.starts_with(MARK) {
            bail!(
                "database {} exists and is not a shadow database of manage (its comment does not start with {MARK:?}); \
                 manage drops only its own shadows: rename or drop it yourself",
                self.name
            );
        }
        self.server.drop_db(&self.name).await
    }

    /// Records what the shadow now holds.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn mark(&self, for_db: &str, fingerprint: &str) -> anyhow::Result<()> {
        let sql = format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(&self.name),
            literal(&mark(for_db, fingerprint))
        );
        self.server.admin().await?.batch_execute(&sql).await?;
        Ok(())
    }

    /// Drops the shadows kept for `for_db`.
    ///
    /// # Errors
    ///
    /// When the server refuses, or a database of a shadow's name is not a shadow.
    pub async fn drop_all(server: &Server, for_db: &str) -> anyhow::Result<()> {
        for role in ["models", "dump"] {
            let shadow = Self {
                server: server.clone(),
                name: Self::name_for(for_db, role),
                loader: Loader {
                    server: server.clone(),
                    role: String::new(),
                },
            };
            shadow.drop_checked().await?;
        }
        Ok(())
    }

    /// The shadows on `server`: (shadow, the target it was kept for, whether that target
    /// still exists). A shadow made for one run (`diff`, `pending`) names no target.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn list(server: &Server) -> anyhow::Result<Vec<ShadowInfo>> {
        let rows = server
            .admin()
            .await?
            .query(
                "SELECT d.datname, shobj_description(d.oid, 'pg_database')                  FROM pg_database d WHERE starts_with(shobj_description(d.oid, 'pg_database'), $1)                  ORDER BY 1",
                &[&MARK],
            )
            .await?;
        let names: std::collections::BTreeSet<String> = server
            .admin()
            .await?
            .query("SELECT datname FROM pg_database", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let comment: String = r.get(1);
                let of = comment
                    .strip_prefix(&format!("{MARK} of "))
                    .and_then(|rest| rest.rsplit_once(": "))
                    .map(|(target, _)| target.to_owned())
                    .filter(|target| {
                        ["models", "dump"]
                            .iter()
                            .any(|role| Self::name_for(target, role) == name)
                    });
                let target_exists = of.as_ref().map(|t| names.contains(t));
                ShadowInfo {
                    name,
                    target: of,
                    target_exists,
                }
            })
            .collect())
    }

    /// Drops the kept shadows whose target no longer exists; returns their names.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or refuses.
    pub async fn prune(server: &Server) -> anyhow::Result<Vec<String>> {
        let mut dropped = Vec::new();
        for info in Self::list(server).await? {
            if info.target_exists == Some(false) {
                let shadow = Self {
                    server: server.clone(),
                    name: info.name.clone(),
                    loader: Loader {
                        server: server.clone(),
                        role: String::new(),
                    },
                };
                shadow.drop_checked().await?;
                dropped.push(info.name);
            }
        }
        Ok(dropped)
    }

    /// A session of the loader role in it: what loads model and dump SQL.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        self.loader.connect(&self.server, &self.name).await
    }

    /// Drops it.
    pub async fn drop(self) {
        if let Err(e) = self.drop_checked().await {
            eprintln!(
                "manage: could not drop the shadow database {}: {e:#}",
                self.name
            );
        }
    }
}

/// A shadow database, as [`Shadow::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowInfo {
    /// Its name.
    pub name: String,
    /// The target it is kept for (none for a shadow made for one run).
    pub target: Option<String>,
    /// Whether that target exists.
    pub target_exists: Option<bool>,
}

fn mark(for_db: &str, fingerprint: &str) -> String {
    format!("{MARK} of {for_db}: {fingerprint}")
}

/// A quoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted literal (sessions run with `standard_conforming_strings` on).
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
        None => worker_kit_pg_tls::describe(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsns_are_redacted_including_query_passwords() {
        let r = redact("postgres://u:secret@h/db?sslmode=disable&password=other");
        assert!(!r.contains("secret") && !r.contains("other"), "{r}");
        assert!(r.contains("sslmode=disable"), "{r}");
    }

    #[test]
    fn shadow_names_never_collide_with_long_targets() {
        let target = "x".repeat(63);
        let models = Shadow::name_for(&target, "models");
        assert_ne!(models, target);
        assert_ne!(models, Shadow::name_for(&target, "dump"));
        assert!(models.len() <= 63);
    }
}
