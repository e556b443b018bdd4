//! The kit's settings read from variables: values, defaults and the error messages.
use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn message(pairs: &[(&str, &str)]) -> String {
    Config::from_vars(vars(pairs)).unwrap_err().to_string()
}

#[test]
fn retry_delays() {
    let c = Config::from_vars(vars(&[])).unwrap();
    assert_eq!(
        (c.retry_delay, c.retry_max_delay),
        (Duration::from_secs(5), Duration::from_secs(300))
    );
    let c = Config::from_vars(vars(&[
        ("QUEUE_RETRY_DELAY_MS", "200"),
        ("QUEUE_RETRY_MAX_DELAY_MS", "800"),
    ]))
    .unwrap();
    assert_eq!(
        (c.retry_delay, c.retry_max_delay),
        (Duration::from_millis(200), Duration::from_millis(800))
    );
    let c = Config::from_vars(vars(&[("QUEUE_RETRY_DELAY_MS", "600000")])).unwrap();
    assert_eq!(
        c.retry_max_delay,
        Duration::from_secs(600),
        "an unset longest wait grows to the first"
    );
    assert_eq!(
        Config::from_vars(vars(&[("QUEUE_RETRY_DELAY_MS", "0")]))
            .unwrap()
            .retry_delay,
        Duration::ZERO,
        "0 retries at once"
    );
    assert_eq!(
        message(&[
            ("QUEUE_RETRY_DELAY_MS", "5000"),
            ("QUEUE_RETRY_MAX_DELAY_MS", "1000")
        ]),
        "configuration: QUEUE_RETRY_MAX_DELAY_MS=\"1000\": the longest retry delay (1000 ms) must be at least the first (QUEUE_RETRY_DELAY_MS=5000 ms), e.g. QUEUE_RETRY_MAX_DELAY_MS=300000"
    );
    assert!(message(&[("QUEUE_RETRY_MAX_DELAY_MS", "4294967296")]).contains("largest TTL"));
    assert!(message(&[("QUEUE_RETRY_DELAY_MS", "soon")]).contains("whole number of milliseconds"));
}

#[test]
fn defaults_without_variables() {
    let c = Config::from_vars(vars(&[])).unwrap();
    assert_eq!(c.amqp_url, DEFAULT_AMQP_URL);
    assert_eq!(c.prefetch, 16);
    assert_eq!(c.worker_concurrency, 64);
    assert_eq!(c.decode_budget_bytes, 128 * 1024 * 1024);
    assert_eq!(c.broker_consumer_timeout, Duration::from_secs(1800));
    assert_eq!(c.mode, Mode::Production);
    assert_eq!(c.log_format, LogFormat::Pretty);
}

#[test]
fn reads_every_variable() {
    let c = Config::from_vars(vars(&[
        ("AMQP_URL", "amqp://u:p@rabbit:5672/vh"),
        ("AMQP_PREFETCH", "8"),
        ("AMQP_CONNECT_TIMEOUT_MS", "1500"),
        ("RPC_TIMEOUT_MS", "2000"),
        ("DRAIN_TIMEOUT_MS", "3000"),
        ("HANDLER_TIMEOUT_MS", "4000"),
        ("QUEUE_MAX_RETRIES", "0"),
        ("RPC_MAX_REDELIVERIES", "1"),
        ("EVENT_PUBLISHERS", "Any"),
        ("QUEUE_TYPE", "Quorum"),
        ("MAX_MESSAGE_BYTES", "1024"),
        ("MAX_DECODED_BYTES", "2048"),
        ("MODE", "development"),
        ("LOG_FORMAT", "JSON"),
        ("PAUSE_ON_DB_OUTAGE", "all"),
        ("DB_HEALTH_INTERVAL_MS", "250"),
        ("DEADLINE_MAX_SKEW_MS", "0"),
        ("RPC_QUEUE_DURABLE", "True"),
        ("METRICS_ADDR", "127.0.0.1:9464"),
        ("UNRELATED", "whatever"),
    ]))
    .unwrap();
    assert_eq!(c.amqp_url, "amqp://u:p@rabbit:5672/vh");
    assert_eq!(c.prefetch, 8);
    assert_eq!(c.connect_timeout, Duration::from_millis(1500));
    assert_eq!(c.rpc_timeout, Duration::from_secs(2));
    assert_eq!(c.drain_timeout, Duration::from_secs(3));
    assert_eq!(c.handler_timeout, Duration::from_secs(4));
    assert_eq!(c.max_retries, 0);
    assert_eq!(c.rpc_max_redeliveries, 1);
    assert_eq!(c.event_publishers, EventPublishers::Any);
    assert_eq!(c.queue_type, QueueType::Quorum);
    assert_eq!(c.max_message_bytes, 1024);
    assert_eq!(c.max_decoded_bytes, 2048);
    assert!(c.is_development());
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.pause_on_db_outage, PausePolicy::All);
    assert_eq!(c.db_health_interval, Duration::from_millis(250));
    assert_eq!(c.deadline_max_skew, Duration::ZERO);
    assert_eq!(c.rpc_queue_durable, RpcQueueDurable::True);
    assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    let bad = message(&[("METRICS_ADDR", "localhost")]);
    assert!(
        bad.contains("METRICS_ADDR") && bad.contains("0.0.0.0:9090"),
        "{bad}"
    );
}

#[test]
fn non_number_names_variable_and_example() {
    let m = message(&[("AMQP_PREFETCH", "lots")]);
    assert_eq!(
        m,
        "configuration: AMQP_PREFETCH=\"lots\": expected a whole number from 1 to 65535, e.g. AMQP_PREFETCH=16"
    );
}

#[test]
fn out_of_range_number() {
    let m = message(&[("AMQP_PREFETCH", "70000")]);
    assert!(m.contains("AMQP_PREFETCH=\"70000\""), "{m}");
}

#[test]
fn each_number_names_its_unit() {
    assert_eq!(
        message(&[("MAX_MESSAGE_BYTES", "8M")]),
        "configuration: MAX_MESSAGE_BYTES=\"8M\": expected a whole number of bytes, e.g. MAX_MESSAGE_BYTES=8388608"
    );
    assert_eq!(
        message(&[("QUEUE_MAX_RETRIES", "-1")]),
        "configuration: QUEUE_MAX_RETRIES=\"-1\": expected a whole number (0 parks at the first failure), e.g. QUEUE_MAX_RETRIES=3"
    );
    assert_eq!(
        message(&[("HANDLER_TIMEOUT_MS", "")]),
        "configuration: HANDLER_TIMEOUT_MS=\"\": expected a whole number of milliseconds, e.g. HANDLER_TIMEOUT_MS=60000"
    );
}

#[test]
fn zero_prefetch_is_refused() {
    let m = message(&[("AMQP_PREFETCH", "0")]);
    assert!(m.contains("unbounded"), "{m}");
    let m = message(&[("WORKER_CONCURRENCY", "0")]);
    assert!(m.contains("WORKER_CONCURRENCY=\"0\""), "{m}");
}

#[test]
fn zero_timeout_is_refused() {
    let m = message(&[("RPC_TIMEOUT_MS", "0")]);
    assert!(
        m.contains("RPC_TIMEOUT_MS=\"0\": expected a positive number"),
        "{m}"
    );
    let m = message(&[("DRAIN_TIMEOUT_MS", "soon")]);
    assert!(m.contains("e.g. DRAIN_TIMEOUT_MS=30000"), "{m}");
}

#[test]
fn bad_mode_and_log_format() {
    let m = message(&[("MODE", "staging")]);
    assert_eq!(
        m,
        "configuration: MODE=\"staging\": expected development or production, e.g. MODE=production"
    );
    let m = message(&[("LOG_FORMAT", "xml")]);
    assert!(m.contains("expected pretty or json"), "{m}");
    let m = message(&[("QUEUE_TYPE", "stream")]);
    assert_eq!(
        m,
        "configuration: QUEUE_TYPE=\"stream\": expected classic or quorum, e.g. QUEUE_TYPE=quorum"
    );
    let m = message(&[("PAUSE_ON_DB_OUTAGE", "sometimes")]);
    assert!(
        m.contains("expected off, queue or all, e.g. PAUSE_ON_DB_OUTAGE=queue"),
        "{m}"
    );
}

#[test]
fn bad_rpc_queue_durable() {
    assert_eq!(
        message(&[("RPC_QUEUE_DURABLE", "sometimes")]),
        "configuration: RPC_QUEUE_DURABLE=\"sometimes\": expected auto, false or true, e.g. RPC_QUEUE_DURABLE=auto"
    );
    let c = Config::from_vars(vars(&[])).unwrap();
    assert_eq!(c.rpc_queue_durable, RpcQueueDurable::Auto);
    assert_eq!(c.deadline_max_skew, Duration::from_secs(5));
}

#[test]
fn url_list_is_accepted() {
    let list = "amqp://u:p@n1:5672/%2f,amqp://u:p@n2:5672/%2f";
    let c = Config::from_vars(vars(&[("AMQP_URL", list)])).unwrap();
    assert_eq!(c.amqp_url, list);
}

#[test]
fn bad_list_entry_is_named_without_passwords() {
    let m = message(&[("AMQP_URL", "amqp://u:pw1@n1/%2f,amqp//u:pw2@n2")]);
    assert!(
        m.starts_with("configuration: AMQP_URL=\"amqp://u:***@n1/%2f,"),
        "{m}"
    );
    assert!(m.contains("entry 2"), "{m}");
    assert!(!m.contains("pw1") && !m.contains("pw2"), "{m}");
    let m = message(&[("AMQP_URL", "amqp://n1/%2f,")]);
    assert!(m.contains("entry 2") && m.contains("empty entry"), "{m}");
}

#[test]
fn tls_files_are_read_and_need_amqps() {
    let c = Config::from_vars(vars(&[
        ("AMQP_URL", "amqps://u:p@rabbit:5671/vh"),
        ("AMQP_TLS_CA_FILE", "/etc/ca.pem"),
        ("AMQP_TLS_CERT_FILE", "/etc/c.pem"),
        ("AMQP_TLS_KEY_FILE", "/etc/c.key"),
    ]))
    .unwrap();
    assert_eq!(c.amqp_tls_ca_file, Some(PathBuf::from("/etc/ca.pem")));
    assert_eq!(c.amqp_tls().key_file, Some(PathBuf::from("/etc/c.key")));
    assert_eq!(
        message(&[("AMQP_TLS_CA_FILE", "/etc/ca.pem")]),
        "configuration: AMQP_TLS_CA_FILE=\"/etc/ca.pem\": is set but AMQP_URL has no amqps:// URL, so the connection would not use TLS at all; use amqps:// (or unset it), e.g. AMQP_TLS_CA_FILE=/etc/rabbitmq/ca.pem"
    );
}

#[test]
fn reply_to_patterns() {
    let c = Config::from_vars(vars(&[("RPC_REPLY_TO", " replies.*, ,*.reply ")])).unwrap();
    assert_eq!(c.rpc_reply_to, ["replies.*", "*.reply"]);
    let m = message(&[("RPC_REPLY_TO", "a,*")]);
    assert_eq!(
        m,
        "configuration: RPC_REPLY_TO=\"a,*\": a pattern of only * would let any caller direct replies into any queue, e.g. RPC_REPLY_TO=replies.*,*.reply"
    );
    let m = message(&[("RPC_REPLY_TO", "my replies")]);
    assert!(m.contains("no spaces"), "{m}");
}

#[test]
fn anonymous_and_allow_lists() {
    let c = Config::from_vars(vars(&[])).unwrap();
    assert_eq!(c.rpc_anonymous, Anonymous::Allow);
    assert!(c.route_allow.is_empty());
    let c = Config::from_vars(vars(&[
        ("RPC_ANONYMOUS", "Deny"),
        (
            "ROUTE_ALLOW",
            " example.items.delete = ops ; example.items.create=greeter, billing-* ;closed=",
        ),
    ]))
    .unwrap();
    assert_eq!(c.rpc_anonymous, Anonymous::Deny);
    let lists: Vec<(&str, &[String])> = c
        .route_allow
        .iter()
        .map(|(r, l)| (r.as_str(), l.patterns()))
        .collect();
    assert_eq!(
        lists,
        [
            ("example.items.delete", &["ops".to_owned()][..]),
            (
                "example.items.create",
                &["greeter".to_owned(), "billing-*".to_owned()][..]
            ),
            ("closed", &[][..]),
        ]
    );
    assert_eq!(
        message(&[("RPC_ANONYMOUS", "maybe")]),
        "configuration: RPC_ANONYMOUS=\"maybe\": expected allow or deny, e.g. RPC_ANONYMOUS=deny"
    );
    assert!(message(&[("ROUTE_ALLOW", "a=x;b")]).contains("entry \"b\" has no `=`"));
    assert!(message(&[("ROUTE_ALLOW", "=x")]).contains("names no route"));
    assert!(message(&[("ROUTE_ALLOW", "a=x;a=y")]).contains("route a is named twice"));
}

#[test]
fn debug_hides_the_amqp_password() {
    let c = Config::from_vars(vars(&[(
        "AMQP_URL",
        "amqp://svc:pw-one@n1/%2f,amqp://svc:pw-two@n2/%2f",
    )]))
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("pw-one") && !shown.contains("pw-two"),
        "{shown}"
    );
    assert!(shown.contains("amqp://svc:***@n1/%2f"), "{shown}");
}

#[test]
fn bad_url_is_reported_without_password() {
    let m = message(&[("AMQP_URL", "http://user:hunter2@host/")]);
    assert!(m.starts_with("configuration: AMQP_URL="), "{m}");
    assert!(!m.contains("hunter2"), "{m}");
}

#[test]
fn every_example_in_the_table_is_a_good_value() {
    for var in VARS {
        let mut pairs = vec![(var.name.to_owned(), var.example.to_owned())];
        if var.name.starts_with("AMQP_TLS_") {
            // TLS files are refused beside a plaintext URL.
            pairs.push(("AMQP_URL".to_owned(), "amqps://u:p@rabbit/%2f".to_owned()));
        }
        if let Err(e) = Config::from_vars(pairs) {
            panic!("the example of {} is refused: {e}", var.name);
        }
    }
}
