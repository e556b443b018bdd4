//! The CRUD route through the broker — one INSERT and one SELECT by id per call — in the
//! kit (`Model<ItemRow>` of the example schema on an `RpcWorker`), hand-written lapin +
//! tokio-postgres (bare, and with the protocol's broker-side guarantees), and the Python
//! seed's stack (aio-pika + asyncpg). Each runs on a fresh database built from
//! models/example.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use deadpool_postgres::{Manager, Pool};
use example::store::ItemRow;
use futures::StreamExt;
use lapin::Connection;
use stubs::example::items::{CreateItem, Item};
use tokio_postgres::NoTls;
use worker_kit::db::{Client, DbConfig, DbError, Insert, Model};
use worker_kit::rpc::RpcWorker;
use worker_kit::runner::Running;
use worker_kit::{Payload, Runner, State};

use crate::lean::Guarantees;

const INSERT: &str = "INSERT INTO items (name, price_cents) VALUES ($1, $2) RETURNING id";
const SELECT: &str =
    "SELECT id, name, price_cents, tags, created_at, updated_at FROM items WHERE id = $1";

fn server_dsn(db: &str) -> String {
    let host = std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into());
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into());
    // Plaintext on both sides: the lean peer connects with `NoTls`, and the kit's default
    // (`prefer`) would encrypt against a server with ssl on, measuring TLS, not the kit.
    format!("postgres://{user}@{host}:5432/{db}?sslmode=disable")
}

async fn admin() -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(&server_dsn("postgres"), NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(conn);
    Ok(client)
}

/// A fresh database with the example schema; returns its DSN.
pub(crate) async fn create_db(name: &str) -> anyhow::Result<String> {
    create_db_with_models(name, "example").await
}

/// A fresh database with the schema of `models/<service>`; returns its DSN.
pub(crate) async fn create_db_with_models(name: &str, service: &str) -> anyhow::Result<String> {
    drop_db(name).await;
    admin()
        .await?
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(service);
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql") && !p.ends_with("queries.sql"))
        .collect();
    files.sort();
    let dsn = server_dsn(name);
    let (client, conn) = tokio_postgres::connect(&dsn, NoTls).await?;
    tokio::spawn(conn);
    for f in files {
        client
            .batch_execute(&std::fs::read_to_string(&f)?)
            .await
            .with_context(|| format!("{}", f.display()))?;
    }
    Ok(dsn)
}

/// Drops the database (errors ignored: cleanup).
pub(crate) async fn drop_db(name: &str) {
    if let Ok(a) = admin().await {
        let _ = a
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
    }
}

/// A new row of `items` (the columns the request sets).
#[derive(Insert)]
struct NewItem<'a> {
    name: &'a str,
    price_cents: i64,
    tags: &'a [String],
}

/// The kit's CRUD handler: create then read by id through `Model<ItemRow>`, both
/// statements on one pooled connection (`Client::connection` + `Model::with`), the access
/// pattern of the lean server.
async fn crud(
    State(items): State<Model<ItemRow>>,
    Payload(req): Payload<CreateItem>,
) -> Result<Item, DbError> {
    let conn = items.executor().connection().await?;
    let items = items.with(&conn);
    let new = NewItem {
        name: &req.name,
        price_cents: req.price_cents,
        tags: &req.tags,
    };
    let created = Item::from(items.create_one(&new).await?);
    Ok(items.read_one_by_id(&created.id).await?.into())
}

/// An `RpcWorker` answering `route` with [`crud`] on the database at `dsn`.
pub(crate) async fn kit_server(url: &str, route: &str, dsn: &str) -> anyhow::Result<Running> {
    let db = Client::new("main", &DbConfig::new(dsn)).map_err(|e| anyhow!("{e}"))?;
    let b = crate::kit::broker(url, "bench kit crud").await?;
    Runner::new("bench", Arc::new(crate::kit::config(url)), b)
        .register_database(db.clone())
        .register_worker(
            RpcWorker::new()
                .route(route, crud)
                .with_state(Model::<ItemRow>::new(db)),
        )
        .start()
        .await
        .context("starting the kit's CRUD server")
}

/// The same route hand-written: plain JSON in and out, a deadpool of 16 connections,
/// prepared statements, both statements on one checked-out connection, ack after the
/// reply is sent on the same channel (unconfirmed, as protocol v2 has it).
pub(crate) async fn lean_server(
    conn: &Connection,
    queue: &str,
    dsn: &str,
    guarantees: Guarantees,
) -> anyhow::Result<()> {
    let pg: tokio_postgres::Config = dsn.parse()?;
    let pool = Pool::builder(Manager::new(pg, NoTls))
        .max_size(16)
        .build()?;
    let (ch, mut consumer) =
        crate::lean::consume(conn, queue, "lean-crud", crate::lean::PREFETCH, guarantees).await?;
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let (ch, pool) = (ch.clone(), pool.clone());
            tokio::spawn(async move {
                let reply = async {
                    let req: serde_json::Value = serde_json::from_slice(&d.data)?;
                    let name = req["name"].as_str().unwrap_or_default();
                    let price = req["price_cents"].as_i64().unwrap_or(0);
                    let db = pool.get().await?;
                    let insert = db.prepare_cached(INSERT).await?;
                    let id: i64 = db.query_one(&insert, &[&name, &price]).await?.get(0);
                    let select = db.prepare_cached(SELECT).await?;
                    let row = db.query_one(&select, &[&id]).await?;
                    let created: chrono::DateTime<chrono::Utc> = row.get(4);
                    let updated: chrono::DateTime<chrono::Utc> = row.get(5);
                    Ok::<_, anyhow::Error>(serde_json::to_vec(&serde_json::json!({
                        "id": row.get::<_, i64>(0),
                        "name": row.get::<_, String>(1),
                        "price_cents": row.get::<_, i64>(2),
                        "tags": row.get::<_, Vec<String>>(3),
                        "created_at": created,
                        "updated_at": updated,
                    }))?)
                }
                .await
                .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()).into_bytes());
                let _ = crate::lean::reply_and_ack(&ch, &d, &reply, guarantees).await;
            });
        }
    });
    Ok(())
}

/// The request of call `i` of load `tag` (item names are unique in the schema).
pub(crate) fn request(tag: &str, i: usize) -> CreateItem {
    CreateItem {
        name: format!("{tag} item {i}"),
        price_cents: i64::try_from(i % 10_000).unwrap_or(0),
        tags: Vec::new(),
    }
}
