//! Object kinds added for issue #11: each built, planned, applied and re-diffed.

use std::process::Command;

use worker_kit_manage::Hazard;

use crate::{Db, admin_dsn, migrate, sql_of, unique};

#[tokio::test]
async fn composite_type_created_altered_and_dropped() {
    let a = "CREATE TYPE money_pair AS (amount numeric(12,2), currency text, note text);
             CREATE FUNCTION zero() RETURNS money_pair LANGUAGE sql AS $$ SELECT (0, 'EUR', NULL)::money_pair $$;";
    let sql = sql_of(&migrate("composite", "", a).await);
    assert!(
        sql.contains(
            "CREATE TYPE public.money_pair AS (amount numeric(12,2), currency text, note text)"
        ),
        "{sql}"
    );
    let b = a.replace(
        "(amount numeric(12,2), currency text, note text)",
        "(amount numeric(14,2), currency text, rate double precision)",
    );
    let plan = migrate("compositealter", a, &b).await;
    let sql = sql_of(&plan);
    assert!(
        sql.contains("ALTER TYPE public.money_pair DROP ATTRIBUTE note")
            && sql.contains("ADD ATTRIBUTE rate double precision")
            && sql.contains("ALTER ATTRIBUTE amount TYPE numeric(14,2)"),
        "{sql}"
    );
    assert_eq!(plan.destructive().count(), 1, "{sql}");
    let sql = sql_of(&migrate("compositedrop", "CREATE TYPE pair AS (a int, b int);", "").await);
    assert!(sql.contains("DROP TYPE public.pair"), "{sql}");
}

#[tokio::test]
async fn enum_value_removed_recreates_the_type() {
    let a = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE TABLE people (name text, mood mood NOT NULL DEFAULT 'ok', past mood[]);
             CREATE VIEW happy AS SELECT name FROM people WHERE mood = 'happy';";
    let plan = migrate(
        "enumrm",
        a,
        &a.replace("('sad', 'ok', 'happy')", "('ok', 'happy')"),
    )
    .await;
    let sql = sql_of(&plan);
    assert!(
        sql.contains("CREATE TYPE public.mood AS ENUM ('ok', 'happy')")
            && sql.contains("USING mood::text::public.mood"),
        "{sql}"
    );
    assert!(plan.destructive().count() >= 1, "{sql}");
    // Reordered values: the same plan.
    migrate(
        "enumreorder",
        a,
        &a.replace("('sad', 'ok', 'happy')", "('happy', 'ok', 'sad')"),
    )
    .await;
}

struct Workdir(std::path::PathBuf);

impl Workdir {
    fn new(models: &str) -> Self {
        let dir = std::env::temp_dir().join(unique("kinds"));
        std::fs::create_dir_all(dir.join("models/svc")).unwrap();
        std::fs::write(dir.join("models/svc/t.sql"), models).unwrap();
        Self(dir)
    }

    fn sync(&self, db: &Db, extra: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_manage"))
            .args(["sync", "--noprompt", "--database-url", &admin_dsn(&db.name)])
            .args(extra)
            .current_dir(&self.0)
            .env_remove("DB_MAIN_DSN")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn enum_value_removal_is_refused_without_unsafe_and_says_why() {
    let a = "CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE TABLE p (m mood);";
    let db = Db::with("enumcli", a).await;
    let w = Workdir::new("CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE p (m mood);");
    let (code, text) = w.sync(&db, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("would lose data") && text.contains("--unsafe"),
        "{text}"
    );
    let (code, text) = w.sync(&db, &["--unsafe"]);
    assert_eq!(code, Some(0), "{text}");
    db.drop().await;
}

#[tokio::test]
async fn not_null_column_without_default_on_a_table_with_rows() {
    let a = "CREATE TABLE t (id int); INSERT INTO t VALUES (1);";
    let db = Db::with("nnrows", a).await;
    let w = Workdir::new("CREATE TABLE t (id int, code text NOT NULL);");
    let (code, text) = w.sync(&db, &["--unsafe"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("has rows")
            && text.contains("DEFAULT")
            && text.contains("ADD COLUMN code text NOT NULL"),
        "{text}"
    );
    // An empty table takes it as it is.
    db.client()
        .await
        .batch_execute("DELETE FROM t")
        .await
        .unwrap();
    let (code, text) = w.sync(&db, &[]);
    assert_eq!(code, Some(0), "{text}");
    db.drop().await;
}

#[tokio::test]
async fn generated_column_becoming_plain_keeps_its_values() {
    let a = "CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a * 2) STORED);";
    let plan = migrate("genplain", a, "CREATE TABLE t (a int, b int);").await;
    assert_eq!(
        sql_of(&plan),
        "ALTER TABLE public.t ALTER COLUMN b DROP EXPRESSION;\n"
    );
    assert!(
        !plan
            .steps
            .iter()
            .any(|s| s.hazard == Some(Hazard::DataLoss))
    );
}
