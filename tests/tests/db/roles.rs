//! Which role a service connects as: the Runner warns in production about a superuser.

use worker_kit::Database;

#[tokio::test]
async fn a_superuser_connection_is_recognized() {
    let db = e2e::pg::TestDb::create("roles", "").await;
    let client = worker_kit::db::Client::new("main", &db.config()).unwrap();
    client.connect().await.unwrap();
    // The tests connect as `postgres`, the default without PGUSER.
    assert_eq!(client.is_superuser().await, Some(true));
    let admin = db.client().await;
    let role = format!("t_plain_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN"
        ))
        .await
        .unwrap();
    let mut config = db.config();
    config.dsn = config
        .dsn
        .replacen("postgres@", &format!("{role}@"), 1)
        .into();
    let plain = worker_kit::db::Client::new("main", &config).unwrap();
    let seen = plain.is_superuser().await;
    plain.close().await;
    client.close().await;
    admin
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await
        .unwrap();
    assert_eq!(seen, Some(false), "dsn {}", config.dsn);
    db.drop_db().await;
}
