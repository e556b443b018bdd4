//! Plans that PostgreSQL used to refuse halfway (issue 26.7): each case is built with
//! rows, planned, applied and re-diffed empty.

use crate::{migrate, sql_of};

const TRIGGER_FN: &str =
    "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;";

#[tokio::test]
async fn a_serial_column_is_dropped_with_its_sequence_once() {
    let a = "CREATE TABLE t (id serial, a int); INSERT INTO t (a) VALUES (1), (2);";
    let sql = sql_of(&migrate("dropserial", a, "CREATE TABLE t (a int);").await);
    assert!(sql.contains("DROP COLUMN id"), "{sql}");
    assert!(!sql.contains("DROP SEQUENCE"), "{sql}");
}

#[tokio::test]
async fn a_type_change_under_a_policy() {
    let a = "CREATE TABLE t (a int, b text); ALTER TABLE t ENABLE ROW LEVEL SECURITY;
             CREATE POLICY positive ON t USING (a > 0); INSERT INTO t VALUES (1, 'x');";
    let sql = sql_of(&migrate("typepolicy", a, &a.replace("a int", "a bigint")).await);
    let drop = sql.find("DROP POLICY positive").expect("policy dropped");
    let alter = sql.find("TYPE bigint").expect("type changed");
    let create = sql
        .find("CREATE POLICY positive")
        .expect("policy made again");
    assert!(drop < alter && alter < create, "{sql}");
}

#[tokio::test]
async fn a_type_change_under_a_trigger_when_and_update_of() {
    let a = format!(
        "CREATE TABLE t (a int, b text); {TRIGGER_FN}
         CREATE TRIGGER on_a BEFORE UPDATE ON t FOR EACH ROW
             WHEN (OLD.a IS DISTINCT FROM NEW.a) EXECUTE FUNCTION touch();
         CREATE TRIGGER of_a BEFORE UPDATE OF a ON t FOR EACH ROW EXECUTE FUNCTION touch();
         INSERT INTO t VALUES (1, 'x');"
    );
    let sql = sql_of(&migrate("typetrigger", &a, &a.replace("a int", "a bigint")).await);
    for name in ["on_a", "of_a"] {
        let drop = sql
            .find(&format!("DROP TRIGGER {name}"))
            .expect("trigger dropped");
        let alter = sql.find("TYPE bigint").expect("type changed");
        let create = sql
            .find(&format!("CREATE TRIGGER {name}"))
            .expect("trigger made again");
        assert!(drop < alter && alter < create, "{sql}");
    }
}

#[tokio::test]
async fn a_type_change_under_a_generated_column() {
    let a = "CREATE TABLE t (a int, twice int GENERATED ALWAYS AS (a * 2) STORED);
             INSERT INTO t (a) VALUES (1), (2);";
    migrate("typegenerated", a, &a.replace("a int", "a bigint")).await;
}

#[tokio::test]
async fn a_primary_key_change_under_a_foreign_key() {
    let a = "CREATE TABLE p (id int, k int NOT NULL, CONSTRAINT p_pkey PRIMARY KEY (id));
             CREATE TABLE c (pid int REFERENCES p (id));
             INSERT INTO p VALUES (1, 1); INSERT INTO c VALUES (1);";
    let b = a.replace("PRIMARY KEY (id)", "PRIMARY KEY (id) INCLUDE (k)");
    let sql = sql_of(&migrate("pkunderfk", a, &b).await);
    assert!(sql.contains("DROP CONSTRAINT c_pid_fkey"), "{sql}");
}

#[tokio::test]
async fn a_unique_change_under_a_foreign_key() {
    let a = "CREATE TABLE p (code text, CONSTRAINT p_code_key UNIQUE (code));
             CREATE TABLE c (code text REFERENCES p (code));
             INSERT INTO p VALUES ('a'); INSERT INTO c VALUES ('a');";
    let b = a.replace("UNIQUE (code)", "UNIQUE NULLS NOT DISTINCT (code)");
    migrate("uniqueunderfk", a, &b).await;
}

const F_INT: &str = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x';";

#[tokio::test]
async fn a_function_result_type_change_under_a_check() {
    let a = format!("{F_INT} CREATE TABLE t (a int CHECK (f(a) > 0)); INSERT INTO t VALUES (1);");
    migrate("fncheck", &a, &a.replace("RETURNS int", "RETURNS bigint")).await;
}

#[tokio::test]
async fn a_function_result_type_change_under_an_index() {
    let a = format!(
        "{F_INT} CREATE TABLE t (a int); CREATE INDEX t_f ON t (f(a)); INSERT INTO t VALUES (1);"
    );
    migrate("fnindex", &a, &a.replace("RETURNS int", "RETURNS bigint")).await;
}

#[tokio::test]
async fn a_function_result_type_change_under_a_policy() {
    let a = format!(
        "{F_INT} CREATE TABLE t (a int); ALTER TABLE t ENABLE ROW LEVEL SECURITY;
         CREATE POLICY positive ON t USING (f(a) > 0); INSERT INTO t VALUES (1);"
    );
    migrate("fnpolicy", &a, &a.replace("RETURNS int", "RETURNS bigint")).await;
}

#[tokio::test]
async fn an_enum_made_again_under_a_policy() {
    let a = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE TABLE t (m mood); ALTER TABLE t ENABLE ROW LEVEL SECURITY;
             CREATE POLICY happy_only ON t USING (m = 'happy'); INSERT INTO t VALUES ('ok');";
    migrate(
        "enumpolicy",
        a,
        &a.replace("('sad', 'ok', 'happy')", "('ok', 'happy')"),
    )
    .await;
}
