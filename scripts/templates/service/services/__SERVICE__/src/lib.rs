//! The `__SERVICE__` service.
//!
//! - `__SERVICE__.hello` (RPC) answers a greeting;
//! - `__SERVICE__.notes.add` (work queue) stores a note in the `notes` table of its database
//!   (`models/__SERVICE__/`).
//!
//! The contracts are in `stubs::__SERVICE__`; callers depend on them, not on this crate.

use std::convert::Infallible;

use stubs::__SERVICE__::{AddNote, Hello, HelloReply};
use worker_kit::asyncapi::Document;
use worker_kit::db::{Client, DbError, Insert, Model, Record};
use worker_kit::queue::QueueWorker;
use worker_kit::rpc::RpcWorker;
use worker_kit::{ErrorReply, IntoErrorReply, Payload, Runner, Setup, State, rpc, task};

/// The service's name: its connection name, its database's name and its routes' prefix.
pub const SERVICE: &str = "__SERVICE__";

/// A row of `notes`.
#[derive(Debug, Clone, Record)]
#[record(table = "notes")]
pub struct Note {
    /// Given by the database.
    pub id: i64,
    /// The note.
    pub text: String,
}

/// What `__SERVICE__.notes.add` inserts (the database fills in the other columns).
#[derive(Insert)]
struct NewNote<'a> {
    text: &'a str,
}

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct App {
    /// The service's database (its pool connects on first use).
    pub db: Client,
}

/// Errors of this service's handlers, each with its own `error.type`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A note with nothing in it.
    #[error("a note needs some text")]
    BlankNote,
    /// The database refused or is unreachable.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl IntoErrorReply for ServiceError {
    fn into_error_reply(self) -> ErrorReply {
        match self {
            ServiceError::BlankNote => ErrorReply::bad_request(self.to_string()),
            ServiceError::Db(e) => e.into_error_reply(),
        }
    }
}

/// Greets the caller's `name`, or the world.
#[rpc(contract = Hello)]
pub async fn hello(Payload(req): Payload<Hello>) -> Result<HelloReply, Infallible> {
    let name = req.name.as_deref().unwrap_or("world");
    Ok(HelloReply {
        message: format!("Hello, {name}! ({SERVICE})"),
    })
}

/// Stores a note. An error is retried (`QUEUE_MAX_RETRIES`) and then parked; a payload
/// that does not fit `AddNote` is parked at once, without running this.
#[task(contract = AddNote)]
pub async fn add_note(
    State(app): State<App>,
    Payload(req): Payload<AddNote>,
) -> Result<(), ServiceError> {
    if req.text.trim().is_empty() {
        return Err(ServiceError::BlankNote);
    }
    let note = Model::<Note>::new(app.db.clone())
        .create_one(&NewNote { text: &req.text })
        .await?;
    tracing::info!(id = note.id, "note stored");
    Ok(())
}

/// The service's RPC routes, still needing their [`App`] (given last, with
/// `.with_state(app)`; the AsyncAPI document describes them without it).
pub fn rpc_worker() -> RpcWorker<App> {
    RpcWorker::new().register(hello)
}

/// The service's work-queue routes, still needing their [`App`] (`.with_state(app)`).
pub fn queue_worker() -> QueueWorker<App> {
    QueueWorker::new().register(add_note)
}

/// The service's AsyncAPI 3.0 document (what `__SERVICE__ asyncapi` prints): made from the
/// route tables, without a broker or a database.
pub fn asyncapi() -> Document {
    Document::new(SERVICE)
        .version(env!("CARGO_PKG_VERSION"))
        .rpc(&rpc_worker())
        .queue(&queue_worker())
}

/// Builds the service on `setup`: its database from `DB_MAIN_DSN` (or the `__SERVICE__`
/// database on the `PGHOST` server), read from the setup's variables (the environment, or
/// what a test gives with [`Setup::with_var`]).
///
/// # Errors
///
/// A malformed database setting.
pub async fn build(setup: Setup) -> Result<Runner, worker_kit::Error> {
    let client = Client::new("main", &setup.db_config("main")?)?;
    let app = App { db: client.clone() };
    // The Runner connects the database before any worker consumes, and closes it last.
    Ok(setup
        .runner()
        .register_database(client)
        .register_worker(rpc_worker().with_state(app.clone()))
        .register_worker(queue_worker().with_state(app)))
}
