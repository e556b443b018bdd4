//! Kinds that used to be listed only as "not compared" (issue 26.8): column privileges,
//! storage parameters, replica identity and statistics objects. Each is planned, applied
//! to a table with rows, and re-diffed empty; the table is not rewritten.

use crate::kinds::{drop_role, role};
use crate::{Db, desired, sql_of};
use worker_kit_manage::{Plan, apply, diff};

/// Plans `a` → `b` on a database built from `a` (with its rows), applies it, checks the
/// re-diff is empty and that `table` kept its storage (no rewrite).
async fn migrate_keeping(prefix: &str, a: &str, b: &str, table: &str) -> Plan {
    let db = Db::with(prefix, a).await;
    let client = db.client().await;
    let file = format!("SELECT pg_relation_filenode('{table}')::bigint");
    let before: i64 = client.query_one(&file, &[]).await.unwrap().get(0);
    let want = desired(&db, &[("b.sql", b)]).await;
    let plan = diff(&db.catalog().await, &want);
    assert!(plan.not_compared.is_empty(), "{:?}", plan.not_compared);
    apply(&client, &plan)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", plan.to_sql()));
    let again = diff(&db.catalog().await, &want);
    assert!(
        again.is_empty(),
        "after applying:\n{}\nstill differs by:\n{}",
        plan.to_sql(),
        again.to_sql()
    );
    let after: i64 = client.query_one(&file, &[]).await.unwrap().get(0);
    assert_eq!(before, after, "{table} was rewritten by\n{}", plan.to_sql());
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 100);
    db.drop().await;
    plan
}

const ROWS: &str = "INSERT INTO t SELECT g, g, 'x' || g FROM generate_series(1, 100) g;";

#[tokio::test]
async fn column_grants_are_granted_and_revoked() {
    let r = role("colgrantee").await;
    let a = format!("CREATE TABLE t (id int PRIMARY KEY, k int, email text); {ROWS}");
    let b = format!(
        "{a} GRANT SELECT (id, email), UPDATE (email) ON t TO {r};
         GRANT INSERT (k) ON t TO {r} WITH GRANT OPTION;"
    );
    let sql = sql_of(&migrate_keeping("colgrant", &a, &b, "t").await);
    for want in [
        format!("GRANT SELECT (email), UPDATE (email) ON TABLE public.t TO {r}"),
        format!("GRANT SELECT (id) ON TABLE public.t TO {r}"),
        format!("GRANT INSERT (k) ON TABLE public.t TO {r} WITH GRANT OPTION"),
    ] {
        assert!(sql.contains(&want), "{want} missing in\n{sql}");
    }
    let c = format!("{a} GRANT SELECT (id) ON t TO {r};");
    let sql = sql_of(&migrate_keeping("colrevoke", &b, &c, "t").await);
    for want in [
        format!("REVOKE SELECT (email), UPDATE (email) ON TABLE public.t FROM {r}"),
        format!("REVOKE INSERT (k) ON TABLE public.t FROM {r}"),
    ] {
        assert!(sql.contains(&want), "{want} missing in\n{sql}");
    }
    // A generated column made again (its expression changes) gets its privileges back.
    let g = format!(
        "CREATE TABLE t (id int, k int, email text, g int GENERATED ALWAYS AS (k * 2) STORED);
         {ROWS} GRANT SELECT (g) ON t TO {r};"
    );
    let db = Db::with("colregrant", &g).await;
    let want = desired(&db, &[("b.sql", &g.replace("k * 2", "k * 3"))]).await;
    let plan = diff(&db.catalog().await, &want);
    apply(&db.client().await, &plan).await.unwrap();
    assert!(
        diff(&db.catalog().await, &want).is_empty(),
        "{}",
        plan.to_sql()
    );
    db.drop().await;
    drop_role(&r).await;
}

#[tokio::test]
async fn storage_parameters_are_set_and_reset() {
    let a = format!(
        "CREATE TABLE t (id int, k int, note text) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);
         ALTER TABLE t SET (toast.autovacuum_enabled = false); {ROWS}"
    );
    let b = format!(
        "CREATE TABLE t (id int, k int, note text) WITH (fillfactor = 90, autovacuum_enabled = false); {ROWS}"
    );
    let sql = sql_of(&migrate_keeping("reloptions", &a, &b, "t").await);
    assert!(
        sql.contains(
            "ALTER TABLE public.t RESET (autovacuum_vacuum_scale_factor, toast.autovacuum_enabled)"
        ) && sql
            .contains("ALTER TABLE public.t SET (autovacuum_enabled = 'false', fillfactor = '90')"),
        "{sql}"
    );
    let plain = format!("CREATE TABLE t (id int, k int, note text); {ROWS}");
    migrate_keeping("reloptionsnew", &plain, &a, "t").await;
    migrate_keeping("reloptionsgone", &a, &plain, "t").await;
    // A new table gets them too.
    crate::migrate("reloptionstable", "", &a).await;
}

#[tokio::test]
async fn replica_identity_follows_the_model() {
    let a = format!(
        "CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, note text);
         CREATE UNIQUE INDEX t_k ON t (k); {ROWS}"
    );
    let by_index = format!("{a} ALTER TABLE t REPLICA IDENTITY USING INDEX t_k;");
    let sql = sql_of(&migrate_keeping("replident", &a, &by_index, "t").await);
    assert!(
        sql.contains("ALTER TABLE public.t REPLICA IDENTITY USING INDEX t_k"),
        "{sql}"
    );
    let full = format!("{a} ALTER TABLE t REPLICA IDENTITY FULL;");
    let sql = sql_of(&migrate_keeping("replidentfull", &by_index, &full, "t").await);
    assert!(
        sql.contains("ALTER TABLE public.t REPLICA IDENTITY FULL"),
        "{sql}"
    );
    let sql = sql_of(&migrate_keeping("replidentdefault", &full, &a, "t").await);
    assert!(
        sql.contains("ALTER TABLE public.t REPLICA IDENTITY DEFAULT"),
        "{sql}"
    );
    // The index it names is replaced (built aside, concurrently): the new one is made the
    // replica identity again.
    let changed = by_index.replace("ON t (k)", "ON t (k, id)");
    migrate_keeping("replidentindex", &by_index, &changed, "t").await;
    // A new table gets it too.
    crate::migrate("replidentnew", "", &full).await;
}

#[tokio::test]
async fn statistics_objects_are_created_changed_and_dropped() {
    let a = format!("CREATE TABLE t (id int, k int, note varchar(20)); {ROWS}");
    let b = format!("{a} CREATE STATISTICS t_idk (dependencies) ON id, k FROM t;");
    let sql = sql_of(&migrate_keeping("stats", &a, &b, "t").await);
    assert!(
        sql.contains("CREATE STATISTICS public.t_idk (dependencies) ON id, k FROM public.t"),
        "{sql}"
    );
    let c = b.replace("(dependencies) ON id, k", "(ndistinct, mcv) ON k, note")
        + " ALTER STATISTICS t_idk SET STATISTICS 500;";
    let sql = sql_of(&migrate_keeping("statschange", &b, &c, "t").await);
    assert!(
        sql.contains("DROP STATISTICS IF EXISTS public.t_idk")
            && sql.contains("ALTER STATISTICS public.t_idk SET STATISTICS 500"),
        "{sql}"
    );
    // A column type change under it (metadata only): made again, still there after.
    let retyped = c.replace("varchar(20)", "varchar(50)");
    migrate_keeping("statsretype", &c, &retyped, "t").await;
    let sql = sql_of(&migrate_keeping("statsdrop", &c, &a, "t").await);
    assert!(
        sql.contains("DROP STATISTICS IF EXISTS public.t_idk"),
        "{sql}"
    );
}
