//! manage against the real PostgreSQL: for each case, build A, plan A → B, apply, and
//! check that a re-diff is empty; plus the command line (prompt, exit codes, messages).

mod aborts;
mod cases;
mod cli;
mod compared;
mod fixtures;
mod hazards;
mod kinds;
mod losses;
mod online;
mod safety;
mod shadows;

use std::path::PathBuf;

use worker_kit_manage::{
    Catalog, ModelFile, Plan, Server, apply, catalog_of_files, diff, load_into,
};

/// The local server (libpq variables, defaulting to the trust setup).
pub(crate) fn admin_dsn(db: &str) -> String {
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PGPORT").unwrap_or_else(|_| "5432".into());
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
    format!("postgres://{user}@{host}:{port}/{db}")
}

pub(crate) fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t_mg_{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn file(name: &str, text: &str) -> ModelFile {
    ModelFile {
        path: PathBuf::from(name),
        text: text.to_owned(),
    }
}

/// A database built from `sql`, dropped by `drop` — or, when a test fails before that, when
/// the value goes away, so a failing test leaves no scratch database behind either.
pub(crate) struct Db {
    pub(crate) server: Server,
    pub(crate) name: String,
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        if name.is_empty() {
            return;
        }
        // A server of its own: the test's shares a session driven by the test's runtime,
        // which is not polled while this waits.
        let (server, _) = Server::from_dsn(&admin_dsn("postgres")).unwrap();
        // Drop cannot await: a thread of its own runs the async clean-up to its end.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            rt.block_on(async {
                let _ = worker_kit_manage::Shadow::drop_all(&server, &name).await;
                let _ = server.drop_db(&name).await;
            });
        })
        .join();
    }
}

impl Db {
    pub(crate) async fn with(prefix: &str, sql: &str) -> Self {
        let name = unique(prefix);
        let (server, _) = Server::from_dsn(&admin_dsn("postgres")).unwrap();
        server.create(&name).await.unwrap();
        let db = Self { server, name };
        load_into(&db.client().await, &[file("a.sql", sql)], false)
            .await
            .expect("schema A loads");
        db
    }

    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        self.server.connect(&self.name).await.unwrap()
    }

    pub(crate) async fn catalog(&self) -> Catalog {
        Catalog::read(&self.client().await).await.unwrap()
    }

    pub(crate) async fn drop(mut self) {
        let name = std::mem::take(&mut self.name);
        worker_kit_manage::Shadow::drop_all(&self.server, &name)
            .await
            .unwrap();
        self.server.drop_db(&name).await.unwrap();
    }
}

/// The catalog the model files `files` describe.
pub(crate) async fn desired(db: &Db, files: &[(&str, &str)]) -> Catalog {
    let files: Vec<ModelFile> = files.iter().map(|(n, t)| file(n, t)).collect();
    catalog_of_files(&db.server, &db.name, "models", &files, false)
        .await
        .expect("models load")
}

/// Builds A, plans A → B, applies it, and checks the result matches B exactly. Returns the
/// plan for the case's own assertions.
pub(crate) async fn migrate(prefix: &str, a: &str, b: &str) -> Plan {
    let db = Db::with(prefix, a).await;
    let want = desired(&db, &[("b.sql", b)]).await;
    let plan = diff(&db.catalog().await, &want);
    assert!(plan.unsupported.is_empty(), "{:?}", plan.unsupported);
    apply(&db.client().await, &plan)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", plan.to_sql()));
    let again = diff(&db.catalog().await, &want);
    assert!(
        again.is_empty(),
        "after applying:\n{}\nstill differs by:\n{}",
        plan.to_sql(),
        again.to_sql()
    );
    db.drop().await;
    plan
}

pub(crate) fn sql_of(plan: &Plan) -> String {
    plan.steps.iter().map(|s| format!("{};\n", s.sql)).collect()
}
