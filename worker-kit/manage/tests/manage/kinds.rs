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

const EVENTS: &str = "CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
     CREATE INDEX events_body ON events (body);
     CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');";

#[tokio::test]
async fn partitioned_table_created_from_nothing() {
    let sql = sql_of(&migrate("partnew", "", EVENTS).await);
    assert!(
        sql.contains("PARTITION BY RANGE (at)")
            && sql.contains("CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
            && !sql.contains("ON ONLY"),
        "{sql}"
    );
}

#[tokio::test]
async fn partitions_added_detached_and_rebounded() {
    let added = format!(
        "{EVENTS} CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE events_other PARTITION OF events DEFAULT;"
    );
    let sql = sql_of(&migrate("partadd", EVENTS, &added).await);
    assert!(
        sql.contains("events_2025 PARTITION OF")
            && sql.contains("events_other PARTITION OF public.events DEFAULT"),
        "{sql}"
    );
    // Detached: the table stays, on its own.
    let detached = "CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE INDEX events_body ON events (body);
         CREATE TABLE events_2024 (id bigint NOT NULL, at date NOT NULL, body text, PRIMARY KEY (id, at));
         CREATE INDEX events_2024_body_idx ON events_2024 (body);";
    let sql = sql_of(&migrate("partdetach", EVENTS, detached).await);
    assert!(
        sql.contains("ALTER TABLE public.events DETACH PARTITION public.events_2024"),
        "{sql}"
    );
    // New bounds: detached and attached again.
    let rebounded = EVENTS.replace("TO ('2025-01-01')", "TO ('2024-07-01')");
    let sql = sql_of(&migrate("partbound", EVENTS, &rebounded).await);
    assert!(
        sql.find("DETACH PARTITION").unwrap() < sql.find("ATTACH PARTITION public.events_2024 FOR VALUES FROM ('2024-01-01') TO ('2024-07-01')").unwrap(),
        "{sql}"
    );
}

#[tokio::test]
async fn a_column_added_to_a_partitioned_table() {
    let b = EVENTS.replace("body text,", "body text, source text,");
    let sql = sql_of(&migrate("partcol", EVENTS, &b).await);
    assert_eq!(sql, "ALTER TABLE public.events ADD COLUMN source text;\n");
}

#[tokio::test]
async fn inheritance_added_and_removed() {
    let a = "CREATE TABLE base (id int, created timestamptz);
             CREATE TABLE child (id int, created timestamptz, extra text);";
    let b = "CREATE TABLE base (id int, created timestamptz);
             CREATE TABLE child (extra text) INHERITS (base);";
    let sql = sql_of(&migrate("inherit", a, b).await);
    assert!(
        sql.contains("ALTER TABLE public.child INHERIT public.base"),
        "{sql}"
    );
    let sql = sql_of(&migrate("noinherit", b, a).await);
    assert!(
        sql.contains("ALTER TABLE public.child NO INHERIT public.base"),
        "{sql}"
    );
    // A column added to the parent reaches the child by itself.
    let c = b.replace("created timestamptz)", "created timestamptz, note text)");
    let sql = sql_of(&migrate("inheritcol", b, &c).await);
    assert_eq!(sql, "ALTER TABLE public.base ADD COLUMN note text;\n");
    // Created from nothing.
    migrate("inheritnew", "", b).await;
}

#[tokio::test]
async fn logged_and_unlogged_switches() {
    let a = "CREATE TABLE cache (k text PRIMARY KEY, v text);";
    let b = "CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text);";
    let sql = sql_of(&migrate("unlogged", a, b).await);
    assert!(
        sql.contains("ALTER TABLE public.cache SET UNLOGGED"),
        "{sql}"
    );
    let sql = sql_of(&migrate("logged", b, a).await);
    assert!(sql.contains("ALTER TABLE public.cache SET LOGGED"), "{sql}");
    migrate("unloggednew", "", b).await;
}

/// A role for one test, dropped by `drop_role` (roles are the server's, not a database's).
pub(crate) async fn role(prefix: &str) -> String {
    let name = unique(prefix);
    let db = Db::with("roles", "").await;
    db.client()
        .await
        .batch_execute(&format!("CREATE ROLE {name} NOLOGIN"))
        .await
        .unwrap();
    db.drop().await;
    name
}

pub(crate) async fn drop_role(name: &str) {
    let db = Db::with("roles", "").await;
    db.client()
        .await
        .batch_execute(&format!("DROP ROLE {name}"))
        .await
        .unwrap();
    db.drop().await;
}

#[tokio::test]
async fn grants_on_tables_views_sequences_schemas_and_functions() {
    let r = role("grantee").await;
    let a = "CREATE SCHEMA app; CREATE TABLE app.t (id int); CREATE VIEW app.v AS SELECT id FROM app.t;
             CREATE SEQUENCE app.s; CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1';";
    let b = format!(
        "{a} GRANT SELECT, INSERT ON app.t TO {r}; GRANT SELECT ON app.v TO {r};
         GRANT USAGE ON SEQUENCE app.s TO {r}; GRANT USAGE ON SCHEMA app TO {r};
         REVOKE EXECUTE ON FUNCTION app.f() FROM PUBLIC;
         GRANT EXECUTE ON FUNCTION app.f() TO {r} WITH GRANT OPTION;"
    );
    let sql = sql_of(&migrate("grant", a, &b).await);
    for want in [
        format!("GRANT INSERT, SELECT ON TABLE app.t TO {r}"),
        format!("GRANT SELECT ON TABLE app.v TO {r}"),
        format!("GRANT USAGE ON SEQUENCE app.s TO {r}"),
        format!("GRANT USAGE ON SCHEMA app TO {r}"),
        "REVOKE EXECUTE ON FUNCTION app.f() FROM PUBLIC".to_owned(),
        format!("GRANT EXECUTE ON FUNCTION app.f() TO {r} WITH GRANT OPTION"),
    ] {
        assert!(sql.contains(&want), "{want} missing in\n{sql}");
    }
    let sql = sql_of(&migrate("revoke", &b, a).await);
    assert!(
        sql.contains(&format!("REVOKE INSERT, SELECT ON TABLE app.t FROM {r}"))
            && sql.contains("GRANT EXECUTE ON FUNCTION app.f() TO PUBLIC"),
        "{sql}"
    );
    // A view that is re-made gets its grants back.
    let c = b.replace("SELECT id FROM app.t", "SELECT id, 1 AS one FROM app.t");
    let sql = sql_of(&migrate("regrant", &b, &c).await);
    assert!(
        sql.contains(&format!("GRANT SELECT ON TABLE app.v TO {r}")),
        "{sql}"
    );
    drop_role(&r).await;
}

#[tokio::test]
async fn collations_created_and_used() {
    let b = "CREATE COLLATION german (provider = icu, locale = 'de-DE');
             CREATE TABLE names (n text COLLATE german);";
    let sql = sql_of(&migrate("collation", "", b).await);
    assert!(
        sql.find("CREATE COLLATION public.german").unwrap() < sql.find("CREATE TABLE").unwrap(),
        "{sql}"
    );
    let sql = sql_of(&migrate("collationdrop", b, "CREATE TABLE names (n text);").await);
    assert!(sql.contains("DROP COLLATION public.german"), "{sql}");
}

#[tokio::test]
async fn sequence_owned_by_set_and_removed() {
    let a = "CREATE TABLE t (id bigint); CREATE SEQUENCE t_ids;";
    let b = "CREATE TABLE t (id bigint); CREATE SEQUENCE t_ids OWNED BY t.id;";
    let sql = sql_of(&migrate("ownedby", a, b).await);
    assert!(
        sql.contains("ALTER SEQUENCE public.t_ids OWNED BY public.t.id"),
        "{sql}"
    );
    let sql = sql_of(&migrate("ownednone", b, a).await);
    assert!(
        sql.contains("ALTER SEQUENCE public.t_ids OWNED BY NONE"),
        "{sql}"
    );
}

const VIEW_WITH_TRIGGER: &str = "CREATE TABLE items (id int, name text);
     CREATE VIEW items_v AS SELECT id, name FROM items;
     CREATE FUNCTION items_v_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO items VALUES (NEW.id, NEW.name); RETURN NEW; END $$;
     CREATE TRIGGER items_v_insert INSTEAD OF INSERT ON items_v FOR EACH ROW EXECUTE FUNCTION items_v_insert();";

#[tokio::test]
async fn instead_of_triggers_on_views() {
    let sql = sql_of(&migrate("viewtrigger", "", VIEW_WITH_TRIGGER).await);
    assert!(sql.contains("INSTEAD OF INSERT ON public.items_v"), "{sql}");
    // The view is re-made (a column type under it changes): its trigger comes back.
    let b = VIEW_WITH_TRIGGER.replace("id int", "id bigint");
    let sql = sql_of(&migrate("viewtriggerremade", VIEW_WITH_TRIGGER, &b).await);
    assert!(sql.contains("CREATE TRIGGER items_v_insert"), "{sql}");
}

#[tokio::test]
async fn identity_added_to_a_nullable_column() {
    let plan = migrate(
        "identity",
        "CREATE TABLE t (id bigint);",
        "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY);",
    )
    .await;
    let sql = sql_of(&plan);
    assert!(
        sql.find("SET NOT NULL").unwrap()
            < sql.find("ADD GENERATED BY DEFAULT AS IDENTITY").unwrap(),
        "{sql}"
    );
}

#[tokio::test]
async fn column_moved_to_another_enum_while_its_default_uses_the_old_one() {
    let a = "CREATE TYPE state_v1 AS ENUM ('new', 'done');
             CREATE TABLE tasks (s state_v1 NOT NULL DEFAULT 'new');";
    let b = "CREATE TYPE state_v2 AS ENUM ('new', 'doing', 'done');
             CREATE TABLE tasks (s state_v2 NOT NULL DEFAULT 'new');";
    let sql = sql_of(&migrate("enummove", a, b).await);
    assert!(
        sql.contains("USING s::text::public.state_v2") || sql.contains("USING s::public.state_v2"),
        "{sql}"
    );
}

#[tokio::test]
async fn a_new_view_over_a_reshaped_table_is_created_once() {
    let a = "CREATE TABLE t (id int, v int); CREATE VIEW old_v AS SELECT id FROM t;";
    let b = "CREATE TABLE t (id bigint, v int); CREATE VIEW old_v AS SELECT id FROM t;
             CREATE VIEW new_v AS SELECT id, v FROM t; CREATE VIEW newer_v AS SELECT id FROM new_v;";
    let sql = sql_of(&migrate("viewonce", a, b).await);
    assert_eq!(sql.matches("CREATE VIEW public.new_v").count(), 1, "{sql}");
    assert_eq!(sql.matches("CREATE VIEW public.old_v").count(), 1, "{sql}");
}
