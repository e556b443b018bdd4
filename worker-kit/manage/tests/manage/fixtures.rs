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
