use worker_kit::db::{DbError, Executor, Model};

use crate::model::{NewUser, User, setup};

async fn count(client: &worker_kit::db::Client) -> i64 {
    let rows = client
        .query_rows(r#"SELECT count(*) FROM "user""#, &[])
        .await
        .unwrap();
    rows[0].get(0)
}

#[tokio::test]
async fn commit_on_ok_and_rollback_on_err() {
    let (db, client) = setup().await;
    let users: Model<User> = Model::new(client.clone());

    let ids = client
        .transaction(|tx| {
            let users = users.with(tx);
            Box::pin(async move {
                let a = users
                    .create_one(&NewUser {
                        name: "a",
                        email: None,
                    })
                    .await?;
                let b = users
                    .create_one(&NewUser {
                        name: "b",
                        email: None,
                    })
                    .await?;
                Ok::<_, DbError>((a.id, b.id))
            })
        })
        .await
        .unwrap();
    assert_eq!(count(&client).await, 2);
    assert!(users.read_one_by_id(&ids.0).await.is_ok());

    let err = client
        .transaction(|tx| {
            let users = users.with(tx);
            Box::pin(async move {
                users
                    .create_one(&NewUser {
                        name: "c",
                        email: None,
                    })
                    .await?;
                users
                    .create_one(&NewUser {
                        name: "d",
                        email: None,
                    })
                    .await?;
                // Fails: "a" exists. Everything above is rolled back.
                users
                    .create_one(&NewUser {
                        name: "a",
                        email: None,
                    })
                    .await?;
                Ok::<_, DbError>(())
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Conflict { .. }), "{err:?}");
    assert_eq!(
        count(&client).await,
        2,
        "nothing of the failed transaction is left"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_panic_inside_a_transaction_rolls_it_back() {
    let (db, client) = setup().await;
    let users: Model<User> = Model::new(client.clone());
    let task = tokio::spawn({
        let (client, users) = (client.clone(), users.clone());
        async move {
            client
                .transaction(|tx| {
                    let users = users.with(tx);
                    Box::pin(async move {
                        users
                            .create_one(&NewUser {
                                name: "doomed",
                                email: None,
                            })
                            .await?;
                        panic!("handler bug in the middle of a transaction");
                        #[allow(unreachable_code)]
                        Ok::<_, DbError>(())
                    })
                })
                .await
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(count(&client).await, 0, "the insert was rolled back");
    // The pool still works, including the connection that saw the panic.
    for i in 0..20 {
        users
            .create_one(&NewUser {
                name: &format!("after-{i}"),
                email: None,
            })
            .await
            .unwrap();
    }
    assert_eq!(count(&client).await, 20);
    db.drop_db().await;
}

#[tokio::test]
async fn several_statements_on_one_pooled_connection() {
    let (db, client) = setup().await;
    let users: Model<User> = Model::new(client.clone());
    let conn = client.connection().await.unwrap();
    let on_conn = users.with(&conn);
    let a = on_conn
        .create_one(&NewUser {
            name: "one-conn",
            email: None,
        })
        .await
        .unwrap();
    assert_eq!(on_conn.read_one_by_id(&a.id).await.unwrap(), a);
    // Not a transaction: visible to other connections at once.
    assert_eq!(users.read_one_by_id(&a.id).await.unwrap(), a);
    drop(conn);
    db.drop_db().await;
}
