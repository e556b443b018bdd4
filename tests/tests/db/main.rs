//! The database layer against the real PostgreSQL, each test in a database of its own.

mod example_store;
mod health;
mod model;
mod outage;
mod roles;
mod tls;
mod tx;
