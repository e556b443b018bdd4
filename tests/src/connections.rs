//! The broker's own view of connections, through `rabbitmqctl` on the broker's host (the
//! management plugin may be off): to find a service's connection by the name it gave
//! ([`Broker::connect`](worker_kit::Broker::connect)'s `name`) and to close it from the
//! broker's side, as a broker restart or a lost network would.

use std::process::Command;

/// The Erlang process ids of the connections whose client-given name is `name`.
///
/// # Panics
///
/// When `rabbitmqctl` cannot list connections.
pub fn named(name: &str) -> Vec<String> {
    // The table form: the JSON form writes process ids in a syntax close_connection refuses.
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs on the broker's host");
    assert!(
        out.status.success(),
        "rabbitmqctl list_connections: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let quoted = format!("\"{name}\"");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains(&quoted))
        .filter_map(|line| line.split('\t').next().map(str::to_owned))
        .collect()
}

/// Closes the connection `pid` from the broker's side (the client sees a
/// `CONNECTION_FORCED` and reconnects).
///
/// # Panics
///
/// When `rabbitmqctl` fails.
pub fn close(pid: &str, why: &str) {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "close_connection", pid, why])
        .output()
        .expect("rabbitmqctl runs on the broker's host");
    assert!(
        out.status.success(),
        "rabbitmqctl close_connection: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
