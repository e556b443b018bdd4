//! The pooled client of one database kind, and its part in the Runner's lifecycle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::BackoffBuilder;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tracing::{info, warn};
use worker_kit_pg_tls::{MakeRustlsConnect, Target};

use super::executor::{Executor, Tx};
use super::{DbConfig, DbError};
use crate::Error;

/// A pool of connections to one database (one per DSN kind: `main`, `dwh`, ...). Cheap to
/// clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    kind: String,
    shown_dsn: String,
    pool: Pool,
    startup_timeout: Duration,
    acquire_timeout: Duration,
    /// How to open the health connection (and the outbox relay's `LISTEN` connection).
    pg: tokio_postgres::Config,
    /// The TLS connector the DSN's `sslmode` and `sslrootcert` ask for.
    tls: MakeRustlsConnect,
    /// A connection of its own for [`Database::is_ready`](crate::Database::is_ready): a
    /// check through the pool would wait behind busy handlers and report a saturated
    /// pool as an outage (pausing consumers exactly when they are busiest).
    health: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// Checkouts that waited `DB_ACQUIRE_TIMEOUT_MS` in vain (a saturated or unreachable
    /// pool), for the metrics.
    acquire_timeouts: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("kind", &self.inner.kind)
            .field("dsn", &self.inner.shown_dsn)
            .finish_non_exhaustive()
    }
}

/// The future a [`Client::transaction`] closure returns.
pub type TxFuture<'t, R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send + 't>>;

impl Client {
    /// A client for database kind `kind` (a name for logs). Connects lazily; register it
    /// with the Runner so it connects (with retries) before workers start.
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] when the DSN does not parse or the pool cannot be built.
    pub fn new(kind: &str, config: &DbConfig) -> Result<Self, DbError> {
        let shown_dsn = crate::redact::url(&config.dsn);
        let Target {
            config: mut pg,
            tls,
            ..
        } = Target::from_dsn(&config.dsn)
            .map_err(|e| DbError::Unavailable(format!("bad DSN {shown_dsn}: {e}")))?;
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name(kind);
        }
        if !config.statement_timeout.is_zero() {
            pg.options(format!(
                "-c statement_timeout={}",
                config.statement_timeout.as_millis()
            ));
        }
        let health_pg = pg.clone();
        let manager = Manager::from_config(
            pg,
            tls.clone(),
            ManagerConfig {
                // A connection whose socket closed is dropped at checkout; a full check
                // per checkout would cost a round trip per query.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.acquire_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| {
                DbError::Unavailable(format!("cannot build the pool for {shown_dsn}: {e}"))
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                kind: kind.to_owned(),
                shown_dsn,
                pool,
                startup_timeout: config.startup_timeout,
                acquire_timeout: config.acquire_timeout,
                pg: health_pg,
                tls,
                health: tokio::sync::Mutex::new(None),
                acquire_timeouts: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// How this client connects (settings and TLS), for a connection of one's own.
    pub(crate) fn connect_settings(&self) -> (tokio_postgres::Config, MakeRustlsConnect) {
        (self.inner.pg.clone(), self.inner.tls.clone())
    }

    /// The DSN with its password hidden.
    pub fn shown_dsn(&self) -> &str {
        &self.inner.shown_dsn
    }

    /// A connection from the pool.
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] when none frees up (or can be opened) within
    /// `DB_ACQUIRE_TIMEOUT_MS`.
    pub async fn connection(&self) -> Result<deadpool_postgres::Object, DbError> {
        match self.inner.pool.get().await {
            Ok(conn) => Ok(conn),
            Err(e) => {
                if matches!(e, deadpool_postgres::PoolError::Timeout(_)) {
                    self.inner
                        .acquire_timeouts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e.into())
            }
        }
    }

    /// Runs `f` in a transaction: commit when it returns `Ok`, roll back when it returns
    /// `Err` (or panics, or is cancelled).
    ///
    /// ```no_run
    /// # use worker_kit::db::{Client, DbError, Executor};
    /// # async fn demo(db: Client) -> Result<(), DbError> {
    /// let moved = db
    ///     .transaction(|tx| Box::pin(async move {
    ///         tx.execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2", &[&10i64, &1i64]).await?;
    ///         tx.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", &[&10i64, &2i64]).await?;
    ///         Ok::<_, DbError>(10)
    ///     }))
    ///     .await?;
    /// # let _ = moved; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `f`'s error, or a [`DbError`] when the transaction cannot begin or commit.
    pub async fn transaction<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: for<'t> FnOnce(&'t Tx<'t>) -> TxFuture<'t, R, E>,
        E: From<DbError>,
    {
        let mut conn = self.connection().await?;
        let tx = Tx {
            inner: conn.transaction().await.map_err(DbError::from)?,
        };
        let result = f(&tx).await;
        match result {
            Ok(v) => {
                tx.inner.commit().await.map_err(DbError::from)?;
                Ok(v)
            }
            Err(e) => {
                if let Err(rb) = tx.inner.rollback().await {
                    warn!(error = %rb, "rollback failed; the connection is discarded");
                }
                Err(e)
            }
        }
    }
}

/// Each statement on a connection of its own from the pool (see [`Client::connection`] to
/// run several on one).
impl Executor for Client {
    async fn query_rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.connection().await?.query_rows(sql, params).await
    }

    async fn query_opt_row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        self.connection().await?.query_opt_row(sql, params).await
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        self.connection().await?.execute(sql, params).await
    }
}

#[async_trait]
impl crate::Database for Client {
    fn name(&self) -> &str {
        &self.inner.kind
    }

    async fn is_superuser(&self) -> Option<bool> {
        let conn = self.connection().await.ok()?;
        let row = conn
            .query_one(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .ok()?;
        row.try_get(0).ok()
    }

    async fn connect(&self) -> Result<(), Error> {
        let started = tokio::time::Instant::now();
        let mut delays = crate::backoff::backoff().build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.execute("SELECT 1", &[]).await {
                Ok(_) => {
                    info!(database = %self.inner.kind, dsn = %self.inner.shown_dsn, "database connected");
                    return Ok(());
                }
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(2));
                    if started.elapsed() + delay > self.inner.startup_timeout {
                        return Err(Error::Database(format!(
                            "could not reach {} after {attempts} attempts over {:.1}s (DB_STARTUP_TIMEOUT_MS={}): {e}; is PostgreSQL running and does the database exist (scripts/pj manage sync creates it)?",
                            self.inner.shown_dsn,
                            started.elapsed().as_secs_f64(),
                            self.inner.startup_timeout.as_millis()
                        )));
                    }
                    warn!(database = %self.inner.kind, dsn = %self.inner.shown_dsn, attempt = attempts, error = %e, "database not reachable yet");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Asks the server on the client's own health connection (opened on first use and
    /// again after it broke), so the answer does not depend on how busy the pool is.
    async fn is_ready(&self) -> bool {
        let mut slot = self.inner.health.lock().await;
        let check = async {
            if slot.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
                let (client, connection) =
                    self.inner.pg.connect(self.inner.tls.clone()).await.ok()?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                *slot = Some(client);
            }
            slot.as_ref()?.simple_query("").await.ok()
        };
        let ready = matches!(
            tokio::time::timeout(self.inner.acquire_timeout, check).await,
            Ok(Some(_))
        );
        if !ready {
            // Whatever state it is in, the next check starts from a fresh connection.
            *slot = None;
        }
        ready
    }

    fn pool_stats(&self) -> Option<crate::db::PoolStats> {
        let s = self.inner.pool.status();
        Some(crate::db::PoolStats::new(
            s.max_size,
            s.size,
            s.size.saturating_sub(s.available),
            s.waiting,
            self.inner
                .acquire_timeouts
                .load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    async fn close(&self) {
        self.inner.health.lock().await.take();
        self.inner.pool.close();
        info!(database = %self.inner.kind, "database pool closed");
    }
}
