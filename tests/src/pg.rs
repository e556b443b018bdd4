//! Throwaway PostgreSQL databases for tests (one per test, dropped at the end).

use tokio_postgres::NoTls;

/// The server the tests use: libpq-style variables, defaulting to the local trust setup.
pub fn server_dsn(database: &str) -> String {
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PGPORT").unwrap_or_else(|_| "5432".into());
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
    match std::env::var("PGPASSWORD") {
        Ok(pw) => format!("postgres://{user}:{pw}@{host}:{port}/{database}"),
        Err(_) => format!("postgres://{user}@{host}:{port}/{database}"),
    }
}

/// A database created for one test.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// A DSN that connects to it.
    pub dsn: String,
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&server_dsn("postgres"), NoTls)
        .await
        .expect("PostgreSQL must be running for the integration tests (scripts/test starts it)");
    tokio::spawn(conn);
    client
}

impl TestDb {
    /// Creates a database named after `prefix` and a random suffix, and runs `schema` in it.
    ///
    /// # Panics
    ///
    /// When PostgreSQL is unreachable or the schema fails.
    pub async fn create(prefix: &str, schema: &str) -> Self {
        let name = format!(
            "t_{prefix}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        let db = Self {
            dsn: server_dsn(&name),
            name,
        };
        db.client()
            .await
            .batch_execute(schema)
            .await
            .expect("test schema");
        db
    }

    /// Creates a database with the schema of `models/<service>/*.sql` (every file but
    /// query files, in name order), as `manage sync` would build it.
    ///
    /// # Panics
    ///
    /// When a model file fails.
    pub async fn with_models(service: &str) -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("models")
            .join(service);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.ends_with(".sql") && name != "queries.sql" && !name.ends_with(".queries.sql")
            })
            .collect();
        files.sort();
        let mut schema = String::new();
        for f in files {
            schema.push_str(&std::fs::read_to_string(&f).expect("model file"));
            schema.push('\n');
        }
        Self::create(service, &schema).await
    }

    /// Settings for a worker-kit client of this database.
    pub fn config(&self) -> worker_kit::db::DbConfig {
        worker_kit::db::DbConfig::new(self.dsn.clone())
    }

    /// A fresh connection.
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.dsn, NoTls)
            .await
            .expect("connect test db");
        tokio::spawn(conn);
        client
    }

    /// Drops the database (connections still open are terminated).
    pub async fn drop_db(self) {
        let _ = admin()
            .await
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await;
    }
}
