//! Issues #29 and #25: kept shadows are pruned when their target is gone, and what marks a
//! shadow as current cannot be written by the role that loads model SQL.

use std::process::Command;

use worker_kit_manage::{Loader, ModelFile, Server, Shadow, catalog_with};

use crate::{Db, admin_dsn, unique};

fn manage(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_manage"))
        .args(args)
        .env_remove("DB_MAIN_DSN")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn shadow_exists(server: &Server, name: &str) -> bool {
    server.exists(name).await.unwrap()
}

#[tokio::test]
async fn shadows_of_a_target_that_is_gone_are_listed_and_pruned() {
    let db = Db::with("gone", "").await;
    let url = admin_dsn("postgres");
    let _ = crate::desired(&db, &[("m.sql", "CREATE TABLE t (id int);")]).await;
    let shadow = Shadow::name_for(&db.name, "models");
    assert!(shadow_exists(&db.server, &shadow).await);
    let (code, out) = manage(&["shadows", "list", "--database-url", &url]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("{shadow}\tkept for {}", db.name)),
        "{out}"
    );
    // The target goes, its shadow stays behind.
    db.server.drop_db(&db.name).await.unwrap();
    let (_, out) = manage(&["shadows", "list", "--database-url", &url]);
    assert!(out.contains("which no longer exists"), "{out}");
    let (code, out) = manage(&["shadows", "prune", "--database-url", &url]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("dropped {shadow}")), "{out}");
    assert!(!shadow_exists(&db.server, &shadow).await);
    db.drop().await;
}

// The loader role runs every target's model SQL; if it could write the mark of a kept
// shadow, models loaded for one target could make another target's stale or tampered
// shadow pass for current.
#[tokio::test]
async fn the_loader_role_cannot_mark_a_shadow_as_current() {
    let db = Db::with("poison", "").await;
    let role = unique("loader");
    let admin = db.server.connect("postgres").await.unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .unwrap();
    let loader_url = admin_dsn("postgres").replacen("postgres@", &format!("{role}@"), 1);
    let loader = Loader::prepare(&db.server, Some(&loader_url))
        .await
        .unwrap();
    let files = [ModelFile {
        path: "m.sql".into(),
        text: "CREATE TABLE t (id int);".into(),
    }];
    catalog_with(&db.server, &loader, &db.name, "models", &files, false)
        .await
        .unwrap();
    let shadow = Shadow::name_for(&db.name, "models");
    let (as_loader, _) =
        Server::from_dsn(&admin_dsn(&shadow).replacen("postgres@", &format!("{role}@"), 1))
            .unwrap();
    let session = as_loader.connect(&shadow).await.unwrap();
    let forged = session
        .batch_execute(&format!(
            "COMMENT ON DATABASE {shadow} IS 'manage shadow of {}: forged'",
            db.name
        ))
        .await;
    assert!(forged.is_err(), "the loader role rewrote the shadow's mark");
    drop(session);
    // Reused while the files are unchanged: the same database, not a new one.
    let oid = || async {
        admin
            .query_one("SELECT oid FROM pg_database WHERE datname = $1", &[&shadow])
            .await
            .unwrap()
            .get::<_, u32>(0)
    };
    let before = oid().await;
    catalog_with(&db.server, &loader, &db.name, "models", &files, false)
        .await
        .unwrap();
    assert_eq!(oid().await, before, "the kept shadow was not reused");
    db.drop().await;
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}
