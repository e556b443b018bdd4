//! Issue #26: hazards as PostgreSQL has them, checked on a table with rows by its file
//! (`pg_relation_filenode` changes when the table is rewritten).

use std::process::Command;

use worker_kit_manage::{Hazard, apply, diff};

use crate::{Db, admin_dsn, desired, unique};

const TABLE: &str =
    "CREATE TABLE h (id int, name varchar(10), note varchar(20), n int, at timestamptz);";

async fn with_rows(prefix: &str) -> Db {
    let db = Db::with(prefix, TABLE).await;
    db.client()
        .await
        .batch_execute("INSERT INTO h (id, name, note, n) SELECT g, 'x', 'y', g FROM generate_series(1, 100) g")
        .await
        .unwrap();
    db
}

async fn filenode(db: &Db) -> u32 {
    db.client()
        .await
        .query_one("SELECT pg_relation_filenode('h')::oid", &[])
        .await
        .unwrap()
        .get(0)
}

/// Plans `TABLE` → `b`, applies it, and returns the statements' hazards and whether the
/// table was rewritten.
async fn applied(prefix: &str, b: &str) -> (Vec<Option<Hazard>>, bool) {
    let db = with_rows(prefix).await;
    let want = desired(&db, &[("b.sql", b)]).await;
    let plan = diff(&db.catalog().await, &want);
    let before = filenode(&db).await;
    apply(&db.client().await, &plan).await.unwrap();
    let rewritten = filenode(&db).await != before;
    assert!(diff(&db.catalog().await, &want).is_empty());
    db.drop().await;
    (plan.steps.iter().map(|s| s.hazard).collect(), rewritten)
}

#[tokio::test]
async fn a_longer_varchar_and_varchar_to_text_change_only_metadata() {
    let b = TABLE
        .replace("varchar(10)", "varchar(50)")
        .replace("varchar(20)", "text");
    let (hazards, rewritten) = applied("meta", &b).await;
    assert_eq!(hazards, vec![None, None]);
    assert!(!rewritten);
}

#[tokio::test]
async fn int_to_bigint_is_a_rewrite() {
    let (hazards, rewritten) = applied("bigint", &TABLE.replace("n int", "n bigint")).await;
    assert_eq!(hazards, vec![Some(Hazard::Rewrite)]);
    assert!(rewritten);
}

#[tokio::test]
async fn a_volatile_default_rewrites_a_stable_one_does_not() {
    let (hazards, rewritten) = applied(
        "volatile",
        &TABLE.replace(
            "at timestamptz",
            "at timestamptz, u uuid DEFAULT gen_random_uuid()",
        ),
    )
    .await;
    assert_eq!(hazards, vec![Some(Hazard::Rewrite)]);
    assert!(rewritten);
    let (hazards, rewritten) = applied(
        "stable",
        &TABLE.replace(
            "at timestamptz",
            "at timestamptz, s timestamptz DEFAULT now()",
        ),
    )
    .await;
    assert_eq!(hazards, vec![None]);
    assert!(!rewritten);
}

// sync refuses a rewrite of a table with rows, with the reason and the online way, unless
// the hazard is allowed by name.
#[tokio::test]
async fn sync_refuses_a_rewrite_of_a_table_with_rows_unless_allowed() {
    let db = with_rows("refuse").await;
    let dir = std::env::temp_dir().join(unique("hazard"));
    std::fs::create_dir_all(dir.join("models/svc")).unwrap();
    std::fs::write(
        dir.join("models/svc/h.sql"),
        TABLE.replace("n int", "n bigint"),
    )
    .unwrap();
    let sync = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_manage"))
            .args(["sync", "--database-url", &admin_dsn(&db.name), "--noprompt"])
            .args(extra)
            .current_dir(&dir)
            .env_remove("DB_MAIN_DSN")
            .output()
            .unwrap()
    };
    let before = filenode(&db).await;
    let out = sync(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--allow-hazard rewrite"), "{err}");
    assert!(err.contains("Online: add a new column"), "{err}");
    assert_eq!(filenode(&db).await, before, "applied anyway");
    let out = sync(&["--allow-hazard", "rewrite"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(filenode(&db).await, before);
    let _ = std::fs::remove_dir_all(dir);
    db.drop().await;
}
