use worker_kit_manage::{Hazard, diff};

use crate::{Db, desired, migrate, sql_of};

const ITEMS: &str = "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, price integer NOT NULL DEFAULT 0);";

fn hazards(plan: &worker_kit_manage::Plan) -> Vec<Hazard> {
    plan.steps.iter().filter_map(|s| s.hazard).collect()
}

#[tokio::test]
async fn add_nullable_column() {
    let plan = migrate(
        "addcol",
        ITEMS,
        &ITEMS.replace("DEFAULT 0)", "DEFAULT 0, note text)"),
    )
    .await;
    assert_eq!(
        sql_of(&plan),
        "ALTER TABLE public.items ADD COLUMN note text;\n"
    );
}

#[tokio::test]
async fn add_not_null_column_with_default() {
    let plan = migrate(
        "addnn",
        ITEMS,
        &ITEMS.replace("DEFAULT 0)", "DEFAULT 0, stock integer NOT NULL DEFAULT 5)"),
    )
    .await;
    assert!(
        sql_of(&plan).contains("ADD COLUMN stock integer DEFAULT 5 NOT NULL"),
        "{}",
        sql_of(&plan)
    );
}

#[tokio::test]
async fn drop_column_is_data_loss() {
    let plan = migrate(
        "dropcol",
        ITEMS,
        &ITEMS.replace(", price integer NOT NULL DEFAULT 0", ""),
    )
    .await;
    assert_eq!(hazards(&plan), vec![Hazard::DataLoss]);
    assert_eq!(plan.destructive().count(), 1);
}

#[tokio::test]
async fn column_type_change_under_a_view() {
    let a = format!("{ITEMS} CREATE VIEW cheap AS SELECT id, price FROM items WHERE price < 10;");
    let b = a.replace("price integer", "price bigint");
    let plan = migrate("typeview", &a, &b).await;
    let sql = sql_of(&plan);
    let drop = sql.find("DROP VIEW public.cheap").expect("view dropped");
    let alter = sql.find("TYPE bigint").expect("type changed");
    let create = sql
        .find("CREATE VIEW public.cheap")
        .expect("view recreated");
    assert!(drop < alter && alter < create, "{sql}");
    assert!(hazards(&plan).contains(&Hazard::Rewrite));
}

#[tokio::test]
async fn set_and_drop_not_null() {
    let a = "CREATE TABLE t (a text, b text NOT NULL);";
    let plan = migrate("nn", a, "CREATE TABLE t (a text NOT NULL, b text);").await;
    let sql = sql_of(&plan);
    assert!(
        sql.contains("ALTER COLUMN a SET NOT NULL") && sql.contains("ALTER COLUMN b DROP NOT NULL"),
        "{sql}"
    );
}

#[tokio::test]
async fn change_a_default() {
    let plan = migrate("default", ITEMS, &ITEMS.replace("DEFAULT 0", "DEFAULT 100")).await;
    assert_eq!(
        sql_of(&plan),
        "ALTER TABLE public.items ALTER COLUMN price SET DEFAULT 100;\n"
    );
}

#[tokio::test]
async fn foreign_key_to_a_new_table() {
    let b = format!(
        "{ITEMS} CREATE TABLE reviews (id int PRIMARY KEY, item_id bigint REFERENCES items (id));"
    );
    let plan = migrate("fknew", ITEMS, &b).await;
    let sql = sql_of(&plan);
    assert!(
        sql.find("CREATE TABLE public.reviews").unwrap() < sql.find("FOREIGN KEY").unwrap(),
        "{sql}"
    );
}

#[tokio::test]
async fn two_new_tables_referencing_each_other() {
    let b = "CREATE TABLE a (id int PRIMARY KEY, b_id int);
             CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
             ALTER TABLE a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES b (id);";
    migrate("mutual", "", b).await;
}

#[tokio::test]
async fn foreign_key_on_delete_changes() {
    let a = format!(
        "{ITEMS} CREATE TABLE r (id int PRIMARY KEY, item_id bigint REFERENCES items (id));"
    );
    let b = a.replace(
        "REFERENCES items (id))",
        "REFERENCES items (id) ON DELETE CASCADE)",
    );
    let sql = sql_of(&migrate("fkaction", &a, &b).await);
    assert!(
        sql.contains("DROP CONSTRAINT r_item_id_fkey") && sql.contains("ON DELETE CASCADE"),
        "{sql}"
    );
}

#[tokio::test]
async fn check_change_and_equivalent_rewrite() {
    let a = "CREATE TABLE t (price int, CONSTRAINT positive CHECK (price > 0));";
    let sql = sql_of(&migrate("check", a, &a.replace("price > 0", "price >= 0")).await);
    assert!(
        sql.contains("DROP CONSTRAINT positive") && sql.contains("CHECK (price >= 0)"),
        "{sql}"
    );
    // Same meaning, other spelling: nothing to do.
    let plan = migrate(
        "checkeq",
        a,
        "create table T (PRICE INT4, constraint positive check ((price > 0::integer)));",
    )
    .await;
    assert!(plan.is_empty(), "{}", plan.to_sql());
}

#[tokio::test]
async fn index_becomes_partial_and_expression_index() {
    let a = format!("{ITEMS} CREATE INDEX items_price ON items (price);");
    let sql = sql_of(
        &migrate(
            "partial",
            &a,
            &a.replace("(price);", "(price) WHERE price > 0;"),
        )
        .await,
    );
    // Replaced without a moment without it: the old one renamed aside, the new one built
    // under its name, the old one dropped.
    let aside = sql
        .find("ALTER INDEX public.items_price RENAME TO")
        .expect(&sql);
    let build = sql
        .find("CREATE INDEX CONCURRENTLY items_price ON public.items USING btree (price) WHERE (price > 0)")
        .expect(&sql);
    let drop = sql
        .find("DROP INDEX CONCURRENTLY IF EXISTS public.\"manage_old_")
        .expect(&sql);
    assert!(aside < build && build < drop, "{sql}");
    let b =
        format!("{ITEMS} CREATE INDEX items_lower_name ON items (lower(name)) INCLUDE (price);");
    let sql = sql_of(&migrate("exprindex", ITEMS, &b).await);
    assert!(sql.contains("(lower(name)) INCLUDE (price)"), "{sql}");
}

#[tokio::test]
async fn enum_value_appended_while_a_view_uses_it() {
    let a = "CREATE TYPE mood AS ENUM ('sad', 'ok');
             CREATE TABLE people (name text, mood mood);
             CREATE VIEW happy AS SELECT name FROM people WHERE mood = 'ok';";
    let plan = migrate(
        "enum",
        a,
        &a.replace("('sad', 'ok')", "('sad', 'ok', 'happy')"),
    )
    .await;
    assert_eq!(plan.steps.len(), 1, "{}", plan.to_sql());
    assert!(plan.steps[0].outside_transaction);
    assert_eq!(
        plan.steps[0].sql,
        "ALTER TYPE public.mood ADD VALUE 'happy' AFTER 'ok'"
    );
}

#[tokio::test]
async fn domain_constraint_changes() {
    let a = "CREATE DOMAIN cents AS bigint CONSTRAINT cents_positive CHECK (VALUE >= 0); CREATE TABLE t (c cents);";
    let sql = sql_of(&migrate("domain", a, &a.replace("VALUE >= 0", "VALUE >= 1")).await);
    assert!(
        sql.contains("ALTER DOMAIN public.cents DROP CONSTRAINT cents_positive"),
        "{sql}"
    );
}

#[tokio::test]
async fn sequence_options_change() {
    let a = "CREATE SEQUENCE tickets INCREMENT BY 1;";
    let sql = sql_of(&migrate("seq", a, "CREATE SEQUENCE tickets INCREMENT BY 10 CACHE 5;").await);
    assert!(
        sql.contains("ALTER SEQUENCE public.tickets AS bigint INCREMENT BY 10"),
        "{sql}"
    );
}

#[tokio::test]
async fn view_chain_where_the_inner_view_gains_a_column() {
    let a = format!(
        "{ITEMS} CREATE VIEW inner_v AS SELECT id, name FROM items; CREATE VIEW outer_v AS SELECT id FROM inner_v;"
    );
    let b = a.replace(
        "SELECT id, name FROM items",
        "SELECT id, name, price FROM items",
    );
    let sql = sql_of(&migrate("chain", &a, &b).await);
    let pos = |s: &str| {
        sql.find(s)
            .unwrap_or_else(|| panic!("{s} missing in {sql}"))
    };
    assert!(pos("DROP VIEW public.outer_v") < pos("DROP VIEW public.inner_v"));
    assert!(pos("CREATE VIEW public.inner_v") < pos("CREATE VIEW public.outer_v"));
}

#[tokio::test]
async fn function_body_versus_signature() {
    let a = "CREATE FUNCTION add1(x int) RETURNS int LANGUAGE sql AS 'SELECT x + 1';";
    let sql = sql_of(&migrate("fnbody", a, &a.replace("x + 1", "x + 2")).await);
    assert!(
        !sql.contains("DROP FUNCTION") && sql.contains("CREATE OR REPLACE FUNCTION public.add1"),
        "{sql}"
    );
    let sql = sql_of(
        &migrate(
            "fnsig",
            a,
            "CREATE FUNCTION add1(x bigint) RETURNS bigint LANGUAGE sql AS 'SELECT x + 1';",
        )
        .await,
    );
    assert!(
        sql.contains("DROP FUNCTION public.add1(x integer)") && sql.contains("add1(x bigint)"),
        "{sql}"
    );
}

#[tokio::test]
async fn trigger_changes() {
    let a = "CREATE TABLE t (a int, b int);
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();";
    let sql = sql_of(
        &migrate(
            "trigger",
            a,
            &a.replace("BEFORE UPDATE", "BEFORE INSERT OR UPDATE"),
        )
        .await,
    );
    assert!(
        sql.contains("DROP TRIGGER t_touch ON public.t") && sql.contains("BEFORE INSERT OR UPDATE"),
        "{sql}"
    );
}

#[tokio::test]
async fn rls_policy_changes() {
    let a = "CREATE TABLE docs (owner text, body text); ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
             CREATE POLICY own ON docs USING (owner = current_user);";
    let sql = sql_of(
        &migrate(
            "policy",
            a,
            &a.replace(
                "USING (owner = current_user)",
                "FOR SELECT USING (owner = current_user)",
            ),
        )
        .await,
    );
    assert!(
        sql.contains("DROP POLICY own ON public.docs") && sql.contains("FOR SELECT"),
        "{sql}"
    );
    let sql = sql_of(
        &migrate(
            "rls",
            "CREATE TABLE d (x int);",
            "CREATE TABLE d (x int); ALTER TABLE d ENABLE ROW LEVEL SECURITY;",
        )
        .await,
    );
    assert!(sql.contains("ENABLE ROW LEVEL SECURITY"), "{sql}");
}

#[tokio::test]
async fn comment_added() {
    let sql = sql_of(
        &migrate(
            "comment",
            ITEMS,
            &format!("{ITEMS} COMMENT ON COLUMN items.name IS 'shown to people';"),
        )
        .await,
    );
    assert_eq!(
        sql,
        "COMMENT ON COLUMN public.items.name IS 'shown to people';\n"
    );
}

#[tokio::test]
async fn new_schema_with_objects_and_an_extension_a_default_needs() {
    let b = "CREATE SCHEMA billing;
             CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\";
             CREATE TABLE billing.invoices (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), total numeric(12,2) NOT NULL);
             CREATE VIEW billing.big AS SELECT id FROM billing.invoices WHERE total > 1000;";
    let sql = sql_of(&migrate("schema", "", b).await);
    let pos = |s: &str| {
        sql.find(s)
            .unwrap_or_else(|| panic!("{s} missing in {sql}"))
    };
    assert!(pos("CREATE SCHEMA billing") < pos("CREATE TABLE billing.invoices"));
    assert!(
        pos("CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"") < pos("CREATE TABLE billing.invoices")
    );
}

#[tokio::test]
async fn identifiers_that_need_quoting() {
    let a = "CREATE TABLE \"user\" (id int PRIMARY KEY, \"Name\" text);";
    let sql = sql_of(
        &migrate(
            "quoting",
            a,
            &a.replace("\"Name\" text", "\"Name\" text, \"Email Address\" text"),
        )
        .await,
    );
    assert_eq!(
        sql,
        "ALTER TABLE public.\"user\" ADD COLUMN \"Email Address\" text;\n"
    );
}

#[tokio::test]
async fn equivalent_type_spellings_give_no_diff() {
    let a = "CREATE TABLE t (a int, b integer, c int4, d varchar(10), e character varying(10), f timestamptz, g bool);";
    let b = "CREATE TABLE t (a integer, b int4, c int, d character varying(10), e varchar(10), f timestamp with time zone, g boolean);";
    let plan = migrate("spelling", a, b).await;
    assert!(plan.is_empty(), "{}", plan.to_sql());
}

#[tokio::test]
async fn an_earlier_file_may_reference_a_later_one() {
    let db = Db::with("order", "").await;
    let want = desired(
        &db,
        &[
            ("a_orders.sql", "CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers (id));"),
            ("b_view.sql", "CREATE VIEW order_count AS SELECT count(*) FROM orders;"),
            ("z_customers.sql", "CREATE TABLE customers (id int PRIMARY KEY);"),
        ],
    )
    .await;
    let sql = sql_of(&diff(&worker_kit_manage::Catalog::default(), &want));
    assert_eq!(sql.matches("CREATE TABLE").count(), 2, "{sql}");
    assert_eq!(sql.matches("CREATE VIEW").count(), 1, "{sql}");
    db.drop().await;
}

#[tokio::test]
async fn a_syntax_error_names_file_and_line() {
    let db = Db::with("syntax", "").await;
    let files = [worker_kit_manage::ModelFile {
        path: "models/x/t.sql".into(),
        text: "CREATE TABLE ok (id int);\n\nCREATE TABLE broken (id int,);\n".into(),
    }];
    let err = worker_kit_manage::catalog_of_files(&db.server, &db.name, "models", &files, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("models/x/t.sql:3: syntax error"), "{err}");
    db.drop().await;
}
