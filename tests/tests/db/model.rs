use std::collections::HashSet;

use e2e::pg::TestDb;
use futures::future::join_all;
use worker_kit::IntoErrorReply;
use worker_kit::db::{Changes, Client, DbError, Insert, Model, PageRequest, Record};

/// A table and columns that need quoting: `user` is reserved, `Name` is mixed case.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE "user" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "Name" text NOT NULL,
    email text,
    score integer NOT NULL DEFAULT 0 CHECK (score >= 0),
    CONSTRAINT "user_Name_key" UNIQUE ("Name")
);
CREATE TABLE ticket (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_key text NOT NULL UNIQUE,
    note text NOT NULL
);
"#;

#[derive(Debug, Clone, PartialEq, Record)]
#[record(table = "user")]
pub(crate) struct User {
    pub(crate) id: i64,
    #[record(rename = "Name")]
    pub(crate) name: String,
    pub(crate) email: Option<String>,
    pub(crate) score: i32,
}

#[derive(Insert)]
pub(crate) struct NewUser<'a> {
    #[record(rename = "Name")]
    pub(crate) name: &'a str,
    pub(crate) email: Option<&'a str>,
}

#[derive(Default, Changes)]
pub(crate) struct UserChanges {
    #[record(rename = "Name")]
    pub(crate) name: Option<String>,
    pub(crate) email: Option<Option<String>>,
    pub(crate) score: Option<i32>,
}

#[derive(Debug, Record)]
#[record(table = "ticket")]
struct Ticket {
    id: i64,
    request_key: String,
    note: String,
}

#[derive(Insert)]
struct NewTicket {
    request_key: String,
    note: String,
}

pub(crate) async fn setup() -> (TestDb, Client) {
    let db = TestDb::create("model", SCHEMA).await;
    let client = Client::new("main", &db.config()).unwrap();
    (db, client)
}

#[tokio::test]
async fn crud_round_trip_with_quoted_identifiers() {
    let (db, client) = setup().await;
    let users: Model<User> = Model::new(client.clone());
    let ada = users
        .create_one(&NewUser {
            name: "Ada",
            email: Some("ada@example.org"),
        })
        .await
        .unwrap();
    assert_eq!(
        (ada.name.as_str(), ada.email.as_deref(), ada.score),
        ("Ada", Some("ada@example.org"), 0)
    );
    assert_eq!(users.read_one_by_id(&ada.id).await.unwrap(), ada);

    // A partial update changes only what it names.
    let scored = users
        .update_one_by_id(
            &ada.id,
            &UserChanges {
                score: Some(7),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (scored.name.as_str(), scored.email.as_deref(), scored.score),
        ("Ada", Some("ada@example.org"), 7)
    );
    // Option<Option<_>> sets NULL.
    let no_mail = users
        .update_one_by_id(
            &ada.id,
            &UserChanges {
                email: Some(None),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((no_mail.email, no_mail.score), (None, 7));

    let deleted = users.delete_one_by_id(&ada.id).await.unwrap();
    assert_eq!(deleted.id, ada.id);
    for err in [
        users.read_one_by_id(&ada.id).await.unwrap_err(),
        users.delete_one_by_id(&ada.id).await.unwrap_err(),
        users
            .update_one_by_id(
                &ada.id,
                &UserChanges {
                    score: Some(1),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, DbError::NotFound { .. }), "{err:?}");
        let reply = err.into_error_reply();
        assert_eq!(reply.error_type, "NotFound");
        assert!(reply.message.contains("user"), "{}", reply.message);
    }
    db.drop_db().await;
}

#[tokio::test]
async fn conflicts_invalid_values_and_empty_updates_are_classified() {
    let (db, client) = setup().await;
    let users: Model<User> = Model::new(client.clone());
    users
        .create_one(&NewUser {
            name: "Bob",
            email: None,
        })
        .await
        .unwrap();
    let err = users
        .create_one(&NewUser {
            name: "Bob",
            email: None,
        })
        .await
        .unwrap_err();
    match &err {
        DbError::Conflict { constraint, .. } => assert_eq!(constraint, "user_Name_key"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let reply = err.into_error_reply();
    assert_eq!(reply.error_type, "Conflict");
    assert_eq!(reply.args, vec![serde_json::json!("user_Name_key")]);

    let bob = users
        .read_many(PageRequest::first(10))
        .await
        .unwrap()
        .items
        .remove(0);
    let err = users
        .update_one_by_id(
            &bob.id,
            &UserChanges {
                score: Some(-1),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Invalid(_)), "{err:?}");
    assert_eq!(err.into_error_reply().error_type, "ValidationError");

    let err = users
        .update_one_by_id(&bob.id, &UserChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::EmptyUpdate), "{err:?}");
    assert_eq!(err.into_error_reply().error_type, "BadRequest");
    db.drop_db().await;
}

#[tokio::test]
async fn paging_through_1000_rows_returns_each_exactly_once() {
    let (db, client) = setup().await;
    client_insert_many(&db, 1000).await;
    let users: Model<User> = Model::new(client);
    let mut seen = HashSet::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = users
            .read_many(PageRequest { after, limit: 100 })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 100);
        for u in &page.items {
            assert!(seen.insert(u.id), "row {} returned twice", u.id);
        }
        match page.last_reference {
            Some(last) => {
                assert_eq!(Some(&last), page.items.last().map(|u| &u.id));
                after = Some(last);
            }
            None => break,
        }
        assert!(pages <= 10, "more pages than rows allow");
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(pages, 10, "the tenth page knows it is the last");
    db.drop_db().await;
}

async fn client_insert_many(db: &TestDb, n: i64) {
    db.client()
        .await
        .execute(
            r#"INSERT INTO "user" ("Name") SELECT 'user-' || g FROM generate_series(1, $1::bigint) g"#,
            &[&n],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn fifty_concurrent_idempotent_creates_make_one_row() {
    let (db, client) = setup().await;
    let tickets: Model<Ticket> = Model::new(client);
    let results = join_all((0..50).map(|i| {
        let tickets = tickets.clone();
        async move {
            tickets
                .create_one_idempotent(
                    &NewTicket {
                        request_key: "req-1".into(),
                        note: format!("attempt {i}"),
                    },
                    "request_key",
                )
                .await
                .unwrap()
        }
    }))
    .await;
    let created = results.iter().filter(|(_, created)| *created).count();
    assert_eq!(created, 1, "exactly one call created the row");
    let first = &results.iter().find(|(_, c)| *c).unwrap().0;
    assert!(
        results
            .iter()
            .all(|(t, _)| t.id == first.id && t.note == first.note),
        "everyone got the first row"
    );
    assert_eq!(first.request_key, "req-1");
    let rows: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM ticket", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    db.drop_db().await;
}

#[tokio::test]
async fn two_hundred_concurrent_handlers_share_the_pool() {
    let (db, client) = setup().await;
    let users: Model<User> = Model::new(client);
    // Each task holds its connection for a while, so the 16 connections are contended.
    let results = join_all((0..200).map(|i| {
        let users = users.clone();
        async move {
            let name = format!("concurrent-{i}");
            let u = users
                .create_one(&NewUser {
                    name: &name,
                    email: None,
                })
                .await?;
            users
                .executor()
                .execute("SELECT pg_sleep(0.005)", &[])
                .await?;
            users.read_one_by_id(&u.id).await
        }
    }))
    .await;
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of 200 failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_a_timeout() {
    let (db, _) = setup().await;
    let mut config = db.config();
    config.statement_timeout = std::time::Duration::from_millis(100);
    let client = Client::new("main", &config).unwrap();
    let err = client.execute("SELECT pg_sleep(2)", &[]).await.unwrap_err();
    assert!(matches!(err, DbError::Timeout), "{err:?}");
    assert_eq!(err.into_error_reply().error_type, "Timeout");
    db.drop_db().await;
}

use worker_kit::db::Executor as _;
