//! The hostile-message generator (issue 25, "The generator"): thousands of seeded hostile
//! messages to every RPC route, work queue and event subscription of the `example`,
//! `greeter` and `catalog` services, running in-process through the real broker on a vhost
//! of their own, interleaved with ordinary calls, while the invariants are checked:
//!
//! - no connection or consuming channel of a service closes (the broker's lists, and the
//!   services' own connection handles to name the case that did it);
//! - every queue drains (parking queues aside), and no request is answered twice;
//! - ordinary calls keep being answered, correctly, within their deadline;
//! - the process's peak resident memory stays under its bound;
//! - the read model never takes an event from a user who does not own its name.
//!
//! Settings (environment; `scripts/pj test hostile --cases N --seed S --case K --off F,G
//! --only F` sets them): `HOSTILE_CASES` (default 2000), `HOSTILE_SEED` (default 25),
//! `HOSTILE_CASE` (run only that case), `HOSTILE_OFF` / `HOSTILE_ONLY` (families, comma
//! separated), `HOSTILE_RSS_MIB` (the bound on the process's peak resident memory, services and
//! generator together; default 384 MiB plus four times the broker's `max_message_size`).

mod attacker;
mod bodies;
mod broker_view;
mod cases;
mod ordinary;
mod props;
mod rng;
mod run;
mod services;
mod settings;
mod targets;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_keep_every_invariant() {
    e2e::init_logs();
    let settings = settings::Settings::from_env().unwrap_or_else(|e| panic!("{e}"));
    run::run(&settings).await;
}
