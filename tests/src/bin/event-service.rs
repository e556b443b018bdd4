//! The `example` or `catalog` service as its own binary builds it, under a service name of
//! the test's choosing (its subscription queues are named after it), for the outbox fault
//! test, which kills these processes. `event-service example|catalog`; settings from the
//! environment as the real binaries read them (`DB_MAIN_DSN`, `EVENTS_EXCHANGE`, ...), plus
//! `EVENT_SERVICE_NAME`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let which = std::env::args().nth(1).unwrap_or_default();
    let name: &'static str = match std::env::var("EVENT_SERVICE_NAME") {
        Ok(n) if !n.is_empty() => Box::leak(n.into_boxed_str()),
        _ => {
            eprintln!("event-service: EVENT_SERVICE_NAME is required");
            return ExitCode::from(2);
        }
    };
    match which.as_str() {
        "example" => worker_kit::runner::main(name, example::build),
        "catalog" => worker_kit::runner::main(name, catalog::build),
        other => {
            eprintln!("event-service: usage: event-service example|catalog (got {other:?})");
            ExitCode::from(2)
        }
    }
}
