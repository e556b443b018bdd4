//! What a re-made object used to lose without a trace (issue 26.6): each case keeps it
//! through apply, and the re-diff is empty.

use crate::{migrate, sql_of};

#[tokio::test]
async fn a_remade_function_keeps_its_comment() {
    let a = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x';
             COMMENT ON FUNCTION f(int) IS 'the identity';";
    let sql = sql_of(&migrate("fncomment", a, &a.replace("RETURNS int", "RETURNS bigint")).await);
    assert!(
        sql.contains("COMMENT ON FUNCTION public.f(x integer) IS 'the identity'"),
        "{sql}"
    );
}

#[tokio::test]
async fn a_remade_enum_keeps_its_comment() {
    let a = "CREATE TYPE mood AS ENUM ('sad', 'ok'); COMMENT ON TYPE mood IS 'how it goes';
             CREATE TABLE t (m mood); INSERT INTO t VALUES ('ok');";
    migrate("enumcomment", a, &a.replace("('sad', 'ok')", "('ok')")).await;
}

#[tokio::test]
async fn a_remade_view_keeps_its_column_comments() {
    let a = "CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t;
             COMMENT ON COLUMN v.a IS 'the a'; INSERT INTO t VALUES (1);";
    migrate("viewcolcomment", a, &a.replace("a int", "a bigint")).await;
}

#[tokio::test]
async fn a_changed_generated_expression_keeps_indexes_checks_and_comments() {
    let a = "CREATE TABLE t (a int, g int GENERATED ALWAYS AS (a * 2) STORED CHECK (g >= 0));
             CREATE INDEX t_g ON t (g); COMMENT ON COLUMN t.g IS 'computed';
             INSERT INTO t (a) VALUES (1), (2);";
    let sql = sql_of(&migrate("genkeep", a, &a.replace("a * 2", "a * 3")).await);
    assert!(
        sql.contains("CREATE INDEX") && sql.contains("COMMENT ON COLUMN"),
        "{sql}"
    );
}

#[tokio::test]
async fn kinds_manage_does_not_compare_are_listed_not_hidden() {
    let a = "CREATE TABLE t (a int, b int);";
    let b = "CREATE TABLE t (a int, b int); CREATE MATERIALIZED VIEW m AS SELECT a, b FROM t;
             CREATE STATISTICS m_ab ON a, b FROM m;
             CREATE RULE t_nothing AS ON DELETE TO t DO INSTEAD NOTHING;";
    let db = crate::Db::with("notcompared", a).await;
    let want = crate::desired(&db, &[("b.sql", b)]).await;
    let plan = worker_kit_manage::diff(&db.catalog().await, &want);
    assert_eq!(
        plan.not_compared,
        vec!["statistics objects on materialized views (1)", "rules (1)"]
    );
    db.drop().await;
}
