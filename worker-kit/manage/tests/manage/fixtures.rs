//! migra's own test fixtures that manage's plans did not apply (issue 26.9), as migra has
//! them (tests/FIXTURES/<name>/a.sql and b.sql): each planned, applied and re-diffed.

use crate::migrate;

#[tokio::test]
async fn migra_dependencies2_a_table_replaced_by_a_view_of_its_name() {
    let a = "create schema x;
             create table x.data(id uuid, name text);
             create view x.q as select * from x.data;";
    let b = "create schema x;
             create table x.t_data(id uuid, name text);
             create view x.data as select * from x.t_data;
             create view x.q as select * from x.data;";
    migrate("migradeps2", a, b).await;
}

#[tokio::test]
async fn migra_inherit2_a_column_moved_from_the_parent_to_the_child() {
    let a = "create table timestamp_base (created_at timestamp default now(), e integer);
             create table a (a1 integer, a2 integer) inherits (timestamp_base);";
    let b = "create table timestamp_base (created_at timestamp default now());
             create table a (a1 integer, a2 integer) inherits (timestamp_base);
             alter table a drop column a2;
             alter table a add column e integer;";
    migrate("migrainherit2", a, b).await;
}

// migra's `partitioning` fixture: partitions added and detached, and two tables switched
// between plain and partitioned, which PostgreSQL cannot do in place: they are dropped and
// created again, so the plan applies here (no rows) ...
const PARTITIONING_A: &str = "CREATE TABLE measurement (city_id int not null, logdate date not null, peaktemp int, unitsales int) PARTITION BY RANGE (logdate);
    CREATE TABLE measurement_y2006m02 PARTITION OF measurement FOR VALUES FROM ('2006-02-01') TO ('2006-03-01');
    CREATE TABLE measurement_y2006m03 PARTITION OF measurement FOR VALUES FROM ('2006-03-01') TO ('2006-04-01');
    CREATE INDEX ON measurement_y2006m02 (logdate);
    CREATE TABLE reg2partitioned (city_id int not null, logdate date not null, peaktemp int, unitsales int);
    CREATE TABLE partitioned2reg (city_id int not null, logdate date not null, peaktemp int, unitsales int) PARTITION BY RANGE (logdate);";
const PARTITIONING_B: &str = "CREATE TABLE measurement (city_id int not null, logdate date not null, peaktemp int, unitsales int, extra text) PARTITION BY RANGE (logdate);
    CREATE TABLE measurement_y2005m02 PARTITION OF measurement FOR VALUES FROM ('2005-02-01') TO ('2005-03-01');
    CREATE TABLE measurement_y2006m02 PARTITION OF measurement FOR VALUES FROM ('2006-02-01') TO ('2006-03-01');
    CREATE TABLE measurement_y2006m03 (city_id int not null, logdate date not null, peaktemp int, unitsales int);
    CREATE TABLE reg2partitioned (city_id int not null, logdate date not null, peaktemp int, unitsales int) PARTITION BY RANGE (logdate);
    CREATE TABLE partitioned2reg (city_id int not null, logdate date not null, peaktemp int, unitsales int);";

#[tokio::test]
async fn migra_partitioning_tables_switched_between_plain_and_partitioned() {
    let plan = migrate("migrapart", PARTITIONING_A, PARTITIONING_B).await;
    assert_eq!(
        plan.remade_tables,
        vec!["public.partitioned2reg", "public.reg2partitioned"]
    );
    let sql = crate::sql_of(&plan);
    assert!(
        sql.contains("DROP TABLE public.reg2partitioned")
            && sql.contains(
                "ALTER TABLE public.measurement DETACH PARTITION public.measurement_y2006m03"
            ),
        "{sql}"
    );
}

// ... and `sync` refuses it, even with --unsafe, when such a table has rows, saying how to
// do it by hand.
#[tokio::test]
async fn a_table_switched_to_partitioned_with_rows_is_refused_with_the_way_by_hand() {
    let a =
        format!("{PARTITIONING_A}\nINSERT INTO reg2partitioned VALUES (1, '2006-02-02', 1, 1);");
    let db = crate::Db::with("migrapartrows", &a).await;
    let dir = std::env::temp_dir().join(crate::unique("migrapartrows"));
    std::fs::create_dir_all(dir.join("models/svc")).unwrap();
    std::fs::write(dir.join("models/svc/t.sql"), PARTITIONING_B).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_manage"))
        .args(["sync", "--noprompt", "--unsafe", "--database-url"])
        .arg(crate::admin_dsn(&db.name))
        .current_dir(&dir)
        .env_remove("DB_MAIN_DSN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("table public.reg2partitioned switches between plain and partitioned")
            && text.contains("move the rows"),
        "{text}"
    );
    let rows: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM reg2partitioned", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    let _ = std::fs::remove_dir_all(dir);
    db.drop().await;
}
