//! What a service's build reads from its `Setup`: the variables it was made from, with a
//! test's own given by `with_var`, and none of their values in `Debug`.

#[tokio::test]
async fn a_setup_reads_the_variables_a_test_gives_and_hides_their_values() {
    let setup = e2e::setup("setup-vars")
        .await
        .with_var("DB_MAIN_DSN", "postgres://app:hunter2@127.0.0.1:5432/shop")
        .with_var("DB_POOL_SIZE", "3")
        .with_var("EVENTS_EXCHANGE", "t.events.setup")
        .with_var("SHOP_GREETING", "hi");
    let db = setup.db_config("main").unwrap();
    assert!(db.dsn.contains("hunter2@127.0.0.1:5432/shop"), "{db:?}");
    assert_eq!(db.pool_size, 3);
    assert_eq!(setup.outbox_settings().unwrap().exchange, "t.events.setup");
    assert_eq!(setup.var("SHOP_GREETING"), Some("hi"));
    assert_eq!(setup.var("SHOP_MISSING"), None);
    let shown = format!("{setup:?}");
    assert!(shown.contains("DB_MAIN_DSN"), "{shown}");
    assert!(!shown.contains("hunter2"), "a password in Debug: {shown}");
    // A malformed variable is named, as from the environment.
    let err = setup
        .with_var("DB_POOL_SIZE", "lots")
        .db_config("main")
        .unwrap_err();
    assert!(err.to_string().contains("DB_POOL_SIZE"), "{err}");
    // The fixture's setup reads nothing from the environment.
    assert_eq!(e2e::setup("setup-vars").await.vars().count(), 0);
}
