//! End-to-end tests through the real RabbitMQ (and, where noted, PostgreSQL). Each test
//! starts the Runner in-process on routes with unique names.

mod attacks;
mod bounds;
mod broker;
mod catalog;
mod concurrency;
mod crud;
mod delayed_retries;
mod events;
mod events_admission;
mod field_limits;
mod fixture;
mod frame_boundary;
mod helpers;
mod hostile;
mod identity;
mod interop;
mod large;
mod lifecycle;
mod limits;
mod metrics_listener;
mod observability;
mod panics;
mod protocol_v2;
mod queue;
mod queue_type;
mod quorum;
mod reply_steering;
mod rpc;
mod rpc_redeliveries;
mod scheduled;
mod seed_api;
mod services;
mod shutdown;
mod tls;
mod versions;
