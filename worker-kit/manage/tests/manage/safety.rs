//! Regression tests for issue #11: what made `manage` unsafe to point at production.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use worker_kit_manage::{Hazard, ModelFile, Server, apply, catalog_of_files, diff};

use crate::{Db, admin_dsn, desired, unique};

fn files(models: &[(&str, &str)]) -> Vec<ModelFile> {
    models
        .iter()
        .map(|(n, t)| ModelFile {
            path: (*n).into(),
            text: (*t).to_owned(),
        })
        .collect()
}

/// A database of exactly `name`, with a table holding one row.
async fn db_named(name: &str) -> Db {
    let (server, _) = Server::from_dsn(&admin_dsn("postgres")).unwrap();
    server.drop_db(name).await.unwrap();
    server.create(name).await.unwrap();
    let db = Db {
        server,
        name: name.to_owned(),
    };
    db.client()
        .await
        .batch_execute("CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me');")
        .await
        .unwrap();
    db
}

async fn rows(db: &Db) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM precious", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

fn long_name(len: usize) -> String {
    let mut n = unique("long");
    while n.len() < len {
        n.push('x');
    }
    n.truncate(len);
    n
}

// Defect 1: a 63-byte target name was its own shadow's name, so loading the models dropped
// and refilled the target.
#[tokio::test]
async fn a_target_with_a_63_byte_name_is_never_its_own_shadow() {
    let db = db_named(&long_name(63)).await;
    let want = desired(&db, &[("b.sql", "CREATE TABLE other (id int);")]).await;
    assert_eq!(rows(&db).await, 1, "the target was dropped and refilled");
    let plan = diff(&db.catalog().await, &want);
    assert!(
        plan.to_sql().contains("CREATE TABLE public.other"),
        "{}",
        plan.to_sql()
    );
    db.drop().await;
}

// Defect 1: from 54 bytes the models and dump shadows shared one name.
#[tokio::test]
async fn models_and_dump_shadows_of_a_long_name_are_distinct() {
    let db = db_named(&long_name(58)).await;
    let name = |role| worker_kit_manage::Shadow::name_for(&db.name, role);
    assert_ne!(name("models"), name("dump"));
    assert_ne!(name("models"), db.name);
    let models = catalog_of_files(
        &db.server,
        &db.name,
        "models",
        &files(&[("m.sql", "CREATE TABLE from_models (id int);")]),
        false,
    )
    .await
    .unwrap();
    let dump = catalog_of_files(
        &db.server,
        &db.name,
        "dump",
        &files(&[("d.sql", "CREATE TABLE from_dump (id int);")]),
        true,
    )
    .await
    .unwrap();
    // Read the models' shadow again: it must still hold the models, not the dump.
    let again = catalog_of_files(
        &db.server,
        &db.name,
        "models",
        &files(&[("m.sql", "CREATE TABLE from_models (id int);")]),
        false,
    )
    .await
    .unwrap();
    assert_eq!(models, again);
    assert_ne!(models, dump);
    db.drop().await;
}

// Defect 1: a database manage did not create as a shadow is never dropped, even when it
// bears a shadow's name.
#[tokio::test]
async fn a_database_that_is_not_a_shadow_is_never_dropped() {
    let probe = Db::with("probe", "").await;
    let target = probe.name.clone();
    let name = worker_kit_manage::Shadow::name_for(&target, "models");
    probe.drop().await;
    let impostor = db_named(&name).await;
    let err = catalog_of_files(
        &impostor.server,
        &target,
        "models",
        &files(&[("m.sql", "CREATE TABLE x (id int);")]),
        false,
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("not a shadow"), "{err:#}");
    assert_eq!(rows(&impostor).await, 1);
    impostor.server.drop_db(&impostor.name).await.unwrap();
}

// Defect 2: a table removed together with its trigger function.
#[tokio::test]
async fn table_and_its_trigger_function_removed_together() {
    let a = "CREATE TABLE keep (id int);
             CREATE TABLE t (a int);
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();";
    let plan = crate::migrate("dropfn", a, "CREATE TABLE keep (id int);").await;
    let sql = plan.to_sql();
    assert!(
        sql.find("DROP TABLE public.t").unwrap() < sql.find("DROP FUNCTION").unwrap(),
        "{sql}"
    );
}

// Defect 2: a function whose result type changes while a column default uses it.
#[tokio::test]
async fn function_result_type_changes_under_a_column_default() {
    let a = "CREATE FUNCTION next_code() RETURNS int LANGUAGE sql AS 'SELECT 7';
             CREATE TABLE t (code bigint DEFAULT next_code());";
    let b = "CREATE FUNCTION next_code() RETURNS bigint LANGUAGE sql AS 'SELECT 7::bigint';
             CREATE TABLE t (code bigint DEFAULT next_code());";
    crate::migrate("fndefault", a, b).await;
}

// Defect 2: a domain whose CHECK calls a function, created from nothing.
#[tokio::test]
async fn domain_check_calling_a_function_is_created_after_it() {
    let b = "CREATE FUNCTION is_even(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v % 2 = 0';
             CREATE DOMAIN even AS int CHECK (is_even(VALUE));
             CREATE TABLE t (e even);";
    crate::migrate("domainfn", "", b).await;
}

// Defect 3: a search_path set on the target database qualified names differently on the
// two sides.
#[tokio::test]
async fn a_search_path_on_the_target_gives_no_false_diff() {
    let models = "CREATE SCHEMA app;
                  CREATE TYPE app.mood AS ENUM ('ok');
                  CREATE SEQUENCE app.codes;
                  CREATE TABLE app.t (m app.mood, code bigint DEFAULT nextval('app.codes'));
                  CREATE VIEW app.v AS SELECT m FROM app.t;";
    let db = Db::with("searchpath", models).await;
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET search_path = app, public",
            db.name
        ))
        .await
        .unwrap();
    let want = desired(&db, &[("m.sql", models)]).await;
    let plan = diff(&db.catalog().await, &want);
    assert!(plan.is_empty(), "{}", plan.to_sql());
    db.drop().await;
}

// Defect 5: narrowing a varchar truncated data silently; it is data loss, and the plain
// ALTER TYPE that runs refuses values that do not fit.
#[tokio::test]
async fn narrowing_a_varchar_is_data_loss_and_never_truncates() {
    let db = Db::with(
        "narrow",
        "CREATE TABLE t (v varchar(100)); INSERT INTO t VALUES ('longer than five');",
    )
    .await;
    let want = desired(&db, &[("b.sql", "CREATE TABLE t (v varchar(5));")]).await;
    let plan = diff(&db.catalog().await, &want);
    assert_eq!(plan.destructive().count(), 1, "{}", plan.to_sql());
    assert!(!plan.to_sql().contains("USING"), "{}", plan.to_sql());
    let err = apply(&db.client().await, &plan).await.unwrap_err();
    assert!(format!("{err:#}").contains("too long"), "{err:#}");
    db.drop().await;
}

#[tokio::test]
async fn numeric_scale_reduction_is_data_loss() {
    let db = Db::with("numeric", "CREATE TABLE t (n numeric(10,2));").await;
    let want = desired(&db, &[("b.sql", "CREATE TABLE t (n numeric(10,0));")]).await;
    let plan = diff(&db.catalog().await, &want);
    assert_eq!(plan.destructive().count(), 1, "{}", plan.to_sql());
    // Widening stays safe.
    let want = desired(&db, &[("c.sql", "CREATE TABLE t (n numeric(12,2));")]).await;
    let plan = diff(&db.catalog().await, &want);
    assert_eq!(plan.destructive().count(), 0, "{}", plan.to_sql());
    db.drop().await;
}

#[tokio::test]
async fn a_plain_column_becoming_generated_is_data_loss() {
    let db = Db::with("generated", "CREATE TABLE t (a int, b int);").await;
    let want = desired(
        &db,
        &[(
            "b.sql",
            "CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a * 2) STORED);",
        )],
    )
    .await;
    let plan = diff(&db.catalog().await, &want);
    assert!(plan.destructive().count() >= 1, "{}", plan.to_sql());
    db.drop().await;
}

#[tokio::test]
async fn removing_a_policy_and_row_level_security_is_refused() {
    let a =
        "CREATE TABLE docs (tenant text, body text); ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
             CREATE POLICY tenant_isolation ON docs USING (tenant = current_user);";
    let db = Db::with("rlsdrop", a).await;
    let want = desired(
        &db,
        &[("b.sql", "CREATE TABLE docs (tenant text, body text);")],
    )
    .await;
    let plan = diff(&db.catalog().await, &want);
    let security: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.hazard == Some(Hazard::Security))
        .collect();
    assert_eq!(security.len(), 2, "{}", plan.to_sql());
    assert_eq!(plan.refused().count(), 2, "{}", plan.to_sql());
    db.drop().await;
}

// Defect 6: model SQL ran with the target's (superuser) power, and after a failed batch
// outside any transaction.
#[tokio::test]
async fn model_sql_cannot_run_programs_or_drop_other_databases() {
    let victim = Db::with("victim", "").await;
    let marker = std::env::temp_dir().join(unique("pwned"));
    // The first failing statement forces the statement-by-statement path.
    let forcing = "CREATE TABLE t (id int);\nSELECT * FROM no_such_table_forces_the_slow_path;\n";
    for evil in [
        format!(
            "{forcing}COPY (SELECT 1) TO PROGRAM 'touch {}';",
            marker.display()
        ),
        format!("{forcing}DROP DATABASE \"{}\";", victim.name),
    ] {
        let evil_target = unique("evil");
        let err = catalog_of_files(
            &victim.server,
            &evil_target,
            "models",
            &files(&[("evil.sql", &evil)]),
            false,
        )
        .await
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.starts_with("evil.sql:3:")
                && (err.contains("pg_execute_server_program") || err.contains("transaction block")),
            "{err}"
        );
        assert!(!marker.exists(), "COPY TO PROGRAM ran: {err}");
        assert!(victim.server.exists(&victim.name).await.unwrap(), "{err}");
        let shadow = worker_kit_manage::Shadow::name_for(&evil_target, "models");
        assert!(
            !victim.server.exists(&shadow).await.unwrap(),
            "a failed load left its shadow behind"
        );
    }
    victim.drop().await;
}

// Defect 6: shadows are not readable by PUBLIC, and model SQL runs as the shadow role, which
// owns the shadow's `public` schema; the database itself is owned by the role manage logs
// in as, so the shadow role cannot rewrite the comment that marks what it holds (#25).
#[tokio::test]
async fn shadows_are_private_and_loaded_by_the_shadow_role() {
    let db = Db::with("private", "").await;
    desired(&db, &[("m.sql", "CREATE TABLE t (id int);")]).await;
    let shadow = worker_kit_manage::Shadow::name_for(&db.name, "models");
    let row = db
        .client()
        .await
        .query_one(
            "SELECT pg_get_userbyid(datdba), has_database_privilege('public', oid, 'CONNECT') \
             FROM pg_database WHERE datname = $1",
            &[&shadow],
        )
        .await
        .unwrap();
    let owner: String = row.get(0);
    let public_connect: bool = row.get(1);
    assert_ne!(owner, worker_kit_manage::SHADOW_ROLE);
    assert!(!public_connect);
    let (server, _) = worker_kit_manage::Server::from_dsn(&admin_dsn(&shadow)).unwrap();
    let table_owner: String = server
        .connect(&shadow)
        .await
        .unwrap()
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(table_owner, worker_kit_manage::SHADOW_ROLE);
    db.drop().await;
}

// Defect 7: literals assumed standard_conforming_strings.
#[tokio::test]
async fn comments_with_backslashes_survive_standard_conforming_strings_off() {
    let db = Db::with("scs", "CREATE TABLE t (id int);").await;
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET standard_conforming_strings = off",
            db.name
        ))
        .await
        .unwrap();
    let want = desired(
        &db,
        &[(
            "b.sql",
            "CREATE TABLE t (id int); COMMENT ON TABLE t IS 'C:\\temp\\new';",
        )],
    )
    .await;
    let plan = diff(&db.catalog().await, &want);
    apply(&db.client().await, &plan).await.unwrap();
    let again = diff(&db.catalog().await, &want);
    assert!(again.is_empty(), "{}", again.to_sql());
    db.drop().await;
}

fn manage(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_manage"));
    c.args(args).env_remove("DB_MAIN_DSN");
    c
}

fn workdir(models: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("safety"));
    std::fs::create_dir_all(dir.join("models/svc")).unwrap();
    std::fs::write(dir.join("models/svc/t.sql"), models).unwrap();
    dir
}

// Defect 4: a second sync of the same target while one runs is refused (each could drop the
// other's shadow); the lock is per target, held on the server's maintenance database.
#[tokio::test]
async fn a_second_sync_of_the_same_target_is_refused() {
    let db = Db::with("lock", "").await;
    let dir = workdir("CREATE TABLE t (id int);");
    let (server, _) = Server::from_dsn(&admin_dsn("postgres")).unwrap();
    let holder = server.connect("postgres").await.unwrap();
    holder
        .execute(
            "SELECT pg_advisory_lock($1::int, hashtext($2))",
            &[&worker_kit_manage::LOCK_CLASS, &db.name],
        )
        .await
        .unwrap();
    let out = manage(&["sync", "--database-url", &admin_dsn(&db.name), "--noprompt"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("another manage"), "{text}");
    drop(holder);
    let _ = std::fs::remove_dir_all(dir);
    db.drop().await;
}

// Defect 4: an ALTER TABLE queued behind a long transaction fails after lock_timeout
// instead of stalling every query on the table.
#[tokio::test]
async fn a_blocked_alter_fails_after_the_lock_timeout() {
    let db = Db::with("locktimeout", "CREATE TABLE t (id int);").await;
    let dir = workdir("CREATE TABLE t (id int, note text);");
    let long = db.client().await;
    long.batch_execute("BEGIN; SELECT * FROM t;").await.unwrap();
    let mut child = manage(&[
        "sync",
        "--database-url",
        &admin_dsn(&db.name),
        "--noprompt",
        "--lock-timeout",
        "300ms",
    ])
    .current_dir(&dir)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The bound on the wait is the test's, not a synchronization: a stalled sync fails it.
    let status = wait_at_most(&mut child, std::time::Duration::from_secs(30));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("lock timeout"), "{err}");
    long.batch_execute("ROLLBACK").await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
    db.drop().await;
}

fn wait_at_most(child: &mut std::process::Child, limit: std::time::Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// Defect 4: the target changes while the prompt waits: nothing is applied.
#[tokio::test]
async fn a_target_that_changed_after_the_prompt_is_not_touched() {
    let db = Db::with("changed", "").await;
    let dir = workdir("CREATE TABLE t (id int);");
    let mut child = manage(&["sync", "--database-url", &admin_dsn(&db.name)])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    // Read up to the prompt (it ends without a newline).
    loop {
        let buf = out.fill_buf().unwrap();
        assert!(
            !buf.is_empty(),
            "no prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        let n = buf.len();
        seen.extend_from_slice(buf);
        out.consume(n);
        if String::from_utf8_lossy(&seen).contains("[y/N]") {
            break;
        }
    }
    db.client()
        .await
        .batch_execute("CREATE TABLE sneaked_in (id int)")
        .await
        .unwrap();
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("changed"), "{err}");
    let cat = db.catalog().await;
    assert!(
        !format!("{cat:?}").contains("public.t\""),
        "the plan was applied anyway"
    );
    let _ = std::fs::remove_dir_all(dir);
    db.drop().await;
}

// Also from the seed: `manage sync noprompt` (a bare word) keeps working.
#[tokio::test]
async fn bare_word_noprompt_is_accepted() {
    let db = Db::with("bareword", "").await;
    let dir = workdir("CREATE TABLE t (id int);");
    let out = manage(&["sync", "--database-url", &admin_dsn(&db.name), "noprompt"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
    db.drop().await;
}
