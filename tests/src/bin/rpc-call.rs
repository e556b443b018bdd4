//! `rpc-call`: call an RPC route by hand and print the reply's data as JSON.
//!
//! ```text
//! rpc-call hello_world
//! rpc-call example.items.get '{"id": 1}'
//! rpc-call --url amqp://guest:guest@rabbit:5672/%2f --timeout 5 dictionary
//! ```
//!
//! Exit codes: 0 success, 1 the route answered with an error (type and message on
//! stderr), 2 usage, 3 no answer (timeout, nobody serves the route, connection lost).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use worker_kit::Broker;
use worker_kit::amqp::AmqpTls;
use worker_kit::rpc::{CallError, CallOptions, RpcClient};

/// Call an RPC route and print the reply's data as JSON.
#[derive(Parser)]
#[command(name = "rpc-call")]
struct Opts {
    /// Broker URL (default: $AMQP_URL, else the local guest account).
    #[arg(long, env = "AMQP_URL", default_value = worker_kit::config::DEFAULT_AMQP_URL, hide_env_values = true)]
    url: String,
    /// For an amqps:// URL: PEM file of the broker's CA (default: $AMQP_TLS_CA_FILE, else
    /// the system's trust store).
    #[arg(long, env = "AMQP_TLS_CA_FILE")]
    tls_ca_file: Option<std::path::PathBuf>,
    /// For an amqps:// URL: a client certificate (default: $AMQP_TLS_CERT_FILE).
    #[arg(long, env = "AMQP_TLS_CERT_FILE")]
    tls_cert_file: Option<std::path::PathBuf>,
    /// Its private key (default: $AMQP_TLS_KEY_FILE).
    #[arg(long, env = "AMQP_TLS_KEY_FILE")]
    tls_key_file: Option<std::path::PathBuf>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// The route (queue) to call.
    route: String,
    /// The request's data, as JSON (default: null).
    json: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let opts = Opts::parse();
    let data: serde_json::Value = match opts.json.as_deref().map(serde_json::from_str).transpose() {
        Ok(v) => v.unwrap_or(serde_json::Value::Null),
        Err(e) => {
            eprintln!("rpc-call: the data is not JSON: {e}");
            return ExitCode::from(2);
        }
    };
    if !(opts.timeout.is_finite() && opts.timeout > 0.0) {
        eprintln!("rpc-call: --timeout must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let tls = AmqpTls::new(opts.tls_ca_file, opts.tls_cert_file, opts.tls_key_file);
    let connected = match Broker::connect_with_tls(
        &opts.url,
        &tls,
        "rpc-call",
        Duration::from_secs(10),
    )
    .await
    {
        Ok(broker) => RpcClient::new(&broker, &worker_kit::Config::default()).await,
        Err(e) => Err(e),
    };
    let client = match connected {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rpc-call: {}", with_sources(&e));
            return ExitCode::from(3);
        }
    };
    let options = CallOptions {
        timeout: Some(Duration::from_secs_f64(opts.timeout)),
        ..CallOptions::default()
    };
    match client
        .call_route::<_, serde_json::Value>(&opts.route, &data, options)
        .await
    {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(CallError::Remote { error, .. }) => {
            eprintln!("{}: {}", error.error_type, error.message);
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("rpc-call: {}", with_sources(&e));
            ExitCode::from(3)
        }
    }
}

/// The error and its causes on one line (`declaring the reply queue failed: ACCESS_REFUSED …`),
/// so a refusal by the broker says why.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // lapin's errors repeat their cause in their own text.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
