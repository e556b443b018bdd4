//! `parked`: operate the messages a work-queue route parked in its `<route>.dead` queue —
//! list them, show one, replay them to the route, purge them — with the services' own
//! connection settings (`AMQP_URL`, the `AMQP_TLS_*` files, the URL's broker user).
//!
//! Reading never takes a message away: `list` and `show` fetch messages without
//! acknowledging them and then close their channel, which hands every one back to the
//! broker (the `browse` module says what that costs). `replay` acknowledges a parked
//! message only after the broker confirmed its copy on the route, and `purge` only those
//! it printed.

mod body;
mod browse;
mod headers;
mod list;
mod parked_message;
mod purge;
mod replay;
mod session;
mod show;

use clap::{Parser, Subcommand};

/// Operate the messages a work-queue route parked in `<ROUTE>.dead`: list, show, replay,
/// purge.
///
/// Connects with the services' settings: AMQP_URL (the broker user of the URL is who
/// `replay` publishes as), AMQP_TLS_CA_FILE / AMQP_TLS_CERT_FILE / AMQP_TLS_KEY_FILE for
/// amqps:// URLs, and AMQP_CONNECT_TIMEOUT_MS (default 5000 here); a .env file in the
/// current directory is read too. Run it as the broker user of the service that owns the
/// route, so that replayed messages are authorized as their original senders.
#[derive(Debug, Parser)]
#[command(name = "parked", version)]
pub struct Opts {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Each parked message: its id, error type and message, retry count, original sender,
    /// age. Messages stay parked, in their order (they are marked redelivered).
    List {
        /// The work-queue route (its parking queue is ROUTE.dead).
        route: String,
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// List at most this many (the oldest first); the total is always shown.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// One parked message: its properties, headers and decoded body (gunzipped, pretty
    /// JSON).
    Show {
        /// The work-queue route.
        route: String,
        /// The id `list` shows (message_id, or a derived `sha256:` id).
        id: String,
        /// Look at most this many parked messages for ID.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
        scan: u32,
    },
    /// Publish parked messages back to ROUTE with x-retry-count 0, x-replayed-by and
    /// x-replayed-at (trace headers kept). A message leaves the parking queue only after the
    /// broker confirmed its replay: an interrupted replay loses nothing and duplicates at
    /// most the one message in flight.
    Replay {
        /// The work-queue route.
        route: String,
        /// Every message parked when the replay starts (those parked again meanwhile wait
        /// for the next run).
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        all: bool,
        /// Only the messages with these ids (as `list` shows them).
        #[arg(long, num_args = 1..)]
        id: Vec<String>,
        /// At most this many messages per second (default: as fast as the broker confirms).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
        /// With --id: look at most this many parked messages for them.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
        scan: u32,
    },
    /// Remove every message parked when it starts, printing each one it removes. Asks
    /// first unless --yes; without a terminal and without --yes it refuses.
    Purge {
        /// The work-queue route.
        route: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs one command.
///
/// # Errors
///
/// When the settings are malformed, the broker cannot be reached or refuses the broker
/// user, the route has no parking queue, or the command itself fails; each says what to do.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        // stdout is the command's output (`list --json` is parsed by scripts).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let route = match &opts.command {
        Command::List { route, .. }
        | Command::Show { route, .. }
        | Command::Replay { route, .. }
        | Command::Purge { route, .. } => route.clone(),
    };
    let session = session::Session::open(&route).await?;
    let result = match opts.command {
        Command::List { json, limit, .. } => list::run(&session, limit, json).await,
        Command::Show { id, scan, .. } => show::run(&session, &id, scan).await,
        Command::Replay {
            all,
            id,
            rate,
            scan,
            ..
        } => {
            let pick = if all {
                replay::Pick::All
            } else {
                replay::Pick::Ids(id)
            };
            replay::run(&session, pick, rate, scan).await
        }
        Command::Purge { yes, .. } => purge::run(&session, yes).await,
    };
    session.close().await;
    result
}
