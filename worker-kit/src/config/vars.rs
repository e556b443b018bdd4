//! The kit's variables, one row each: name, a good value (quoted in errors, and read by
//! `tests/scripts/dotenv.sh` for the names `.env` passes on), and the parser that checks
//! it and stores it in [`Config`]. The defaults are [`Config::default`]'s.

use std::path::PathBuf;

use super::amqp_url::{AmqpUrl, DEFAULT_AMQP_URL};
use super::choices::{
    AllowList, Anonymous, EventPublishers, LogFormat, Mode, PausePolicy, QueueType, RpcQueueDurable,
};
use super::fields::Config;
use super::reader::{Var, bytes, choice, millis, whole};

/// Every variable [`Config`] reads.
pub(crate) const VARS: &[Var<Config>] = &[
    Var {
        name: "AMQP_URL",
        example: DEFAULT_AMQP_URL,
        secret: true,
        parse: |v, c| {
            c.amqp_url = AmqpUrl::parse_list(v)?;
            Ok(())
        },
    },
    Var {
        name: "AMQP_TLS_CA_FILE",
        example: "/etc/rabbitmq/ca.pem",
        secret: false,
        parse: |v, c| {
            c.amqp_tls_ca_file = Some(path(v)?);
            Ok(())
        },
    },
    Var {
        name: "AMQP_TLS_CERT_FILE",
        example: "/etc/service/client.pem",
        secret: false,
        parse: |v, c| {
            c.amqp_tls_cert_file = Some(path(v)?);
            Ok(())
        },
    },
    Var {
        name: "AMQP_TLS_KEY_FILE",
        example: "/etc/service/client.key",
        secret: false,
        parse: |v, c| {
            c.amqp_tls_key_file = Some(path(v)?);
            Ok(())
        },
    },
    Var {
        name: "AMQP_PREFETCH",
        example: "16",
        secret: false,
        parse: |v, c| {
            if v.trim() == "0" {
                return Err(
                    "expected a whole number from 1 to 65535 (0 would mean unbounded)".into(),
                );
            }
            c.prefetch =
                u16::try_from(whole(v, 1, 65_535, " from 1 to 65535")?).expect("checked range");
            Ok(())
        },
    },
    Var {
        name: "WORKER_CONCURRENCY",
        example: "64",
        secret: false,
        parse: |v, c| {
            if v.trim() == "0" {
                return Err("expected a whole number from 1 to 65535 (0 would run nothing)".into());
            }
            c.worker_concurrency =
                u16::try_from(whole(v, 1, 65_535, " from 1 to 65535")?).expect("checked range");
            Ok(())
        },
    },
    Var {
        name: "AMQP_CONNECT_TIMEOUT_MS",
        example: "30000",
        secret: false,
        parse: |v, c| {
            c.connect_timeout = millis(v, false)?;
            Ok(())
        },
    },
    Var {
        name: "RPC_TIMEOUT_MS",
        example: "30000",
        secret: false,
        parse: |v, c| {
            c.rpc_timeout = millis(v, false)?;
            Ok(())
        },
    },
    Var {
        name: "DRAIN_TIMEOUT_MS",
        example: "30000",
        secret: false,
        parse: |v, c| {
            c.drain_timeout = millis(v, false)?;
            Ok(())
        },
    },
    Var {
        name: "HANDLER_TIMEOUT_MS",
        example: "60000",
        secret: false,
        parse: |v, c| {
            c.handler_timeout = millis(v, false)?;
            Ok(())
        },
    },
    Var {
        name: "BROKER_CONSUMER_TIMEOUT_MS",
        example: "1800000",
        secret: false,
        // Zero: the broker has no consumer timeout.
        parse: |v, c| {
            c.broker_consumer_timeout = millis(v, true)?;
            Ok(())
        },
    },
    Var {
        name: "QUEUE_MAX_RETRIES",
        example: "3",
        secret: false,
        parse: |v, c| {
            c.max_retries = count(v, " (0 parks at the first failure)")?;
            Ok(())
        },
    },
    Var {
        name: "QUEUE_RETRY_DELAY_MS",
        example: "5000",
        secret: false,
        parse: |v, c| {
            c.retry_delay = millis(v, true)?;
            Ok(())
        },
    },
    Var {
        name: "QUEUE_RETRY_MAX_DELAY_MS",
        example: "300000",
        secret: false,
        // The range against QUEUE_RETRY_DELAY_MS and the broker's largest TTL is checked
        // once both are read (`super::retry_delays`).
        parse: |v, c| {
            c.retry_max_delay = millis(v, true)?;
            Ok(())
        },
    },
    Var {
        name: "RPC_MAX_REDELIVERIES",
        example: "3",
        secret: false,
        parse: |v, c| {
            c.rpc_max_redeliveries = count(v, " (0 refuses a request at its first redelivery)")?;
            Ok(())
        },
    },
    Var {
        name: "QUEUE_TYPE",
        example: "quorum",
        secret: false,
        parse: |v, c| {
            c.queue_type = choice(
                v,
                &[
                    ("classic", QueueType::Classic),
                    ("quorum", QueueType::Quorum),
                ],
                "classic or quorum",
            )?;
            Ok(())
        },
    },
    Var {
        name: "MAX_MESSAGE_BYTES",
        example: "8388608",
        secret: false,
        parse: |v, c| {
            c.max_message_bytes = bytes(v)?;
            Ok(())
        },
    },
    Var {
        name: "MAX_DECODED_BYTES",
        example: "8388608",
        secret: false,
        parse: |v, c| {
            c.max_decoded_bytes = bytes(v)?;
            Ok(())
        },
    },
    Var {
        name: "DECODE_BUDGET_BYTES",
        example: "134217728",
        secret: false,
        parse: |v, c| {
            c.decode_budget_bytes = bytes(v)?;
            Ok(())
        },
    },
    Var {
        name: "MODE",
        example: "production",
        secret: false,
        parse: |v, c| {
            c.mode = choice(
                v,
                &[
                    ("development", Mode::Development),
                    ("dev", Mode::Development),
                    ("production", Mode::Production),
                    ("prod", Mode::Production),
                ],
                "development or production",
            )?;
            Ok(())
        },
    },
    Var {
        name: "LOG_FORMAT",
        example: "json",
        secret: false,
        parse: |v, c| {
            c.log_format = choice(
                v,
                &[
                    ("pretty", LogFormat::Pretty),
                    ("text", LogFormat::Pretty),
                    ("json", LogFormat::Json),
                ],
                "pretty or json",
            )?;
            Ok(())
        },
    },
    Var {
        name: "PAUSE_ON_DB_OUTAGE",
        example: "queue",
        secret: false,
        parse: |v, c| {
            c.pause_on_db_outage = choice(
                v,
                &[
                    ("off", PausePolicy::Off),
                    ("none", PausePolicy::Off),
                    ("false", PausePolicy::Off),
                    ("queue", PausePolicy::Queue),
                    ("queues", PausePolicy::Queue),
                    ("all", PausePolicy::All),
                ],
                "off, queue or all",
            )?;
            Ok(())
        },
    },
    Var {
        name: "DB_HEALTH_INTERVAL_MS",
        example: "1000",
        secret: false,
        parse: |v, c| {
            c.db_health_interval = millis(v, false)?;
            Ok(())
        },
    },
    Var {
        name: "DEADLINE_MAX_SKEW_MS",
        example: "5000",
        secret: false,
        parse: |v, c| {
            c.deadline_max_skew = millis(v, true)?;
            Ok(())
        },
    },
    Var {
        name: "RPC_QUEUE_DURABLE",
        example: "auto",
        secret: false,
        parse: |v, c| {
            c.rpc_queue_durable = choice(
                v,
                &[
                    ("auto", RpcQueueDurable::Auto),
                    ("false", RpcQueueDurable::False),
                    ("no", RpcQueueDurable::False),
                    ("0", RpcQueueDurable::False),
                    ("true", RpcQueueDurable::True),
                    ("yes", RpcQueueDurable::True),
                    ("1", RpcQueueDurable::True),
                ],
                "auto, false or true",
            )?;
            Ok(())
        },
    },
    Var {
        name: "RPC_REPLY_TO",
        example: "replies.*,*.reply",
        secret: false,
        parse: |v, c| {
            c.rpc_reply_to = reply_to_patterns(v)?;
            Ok(())
        },
    },
    Var {
        name: "RPC_ANONYMOUS",
        example: "deny",
        secret: false,
        parse: |v, c| {
            c.rpc_anonymous = choice(
                v,
                &[("allow", Anonymous::Allow), ("deny", Anonymous::Deny)],
                "allow or deny",
            )?;
            Ok(())
        },
    },
    Var {
        name: "EVENT_PUBLISHERS",
        example: "owner",
        secret: false,
        parse: |v, c| {
            c.event_publishers = choice(
                v,
                &[
                    ("owner", EventPublishers::Owner),
                    ("any", EventPublishers::Any),
                ],
                "owner or any",
            )?;
            Ok(())
        },
    },
    Var {
        name: "ROUTE_ALLOW",
        example: "example.items.delete=ops;example.items.create=greeter,billing-*",
        secret: false,
        parse: |v, c| {
            c.route_allow = route_allow(v)?;
            Ok(())
        },
    },
    Var {
        name: "METRICS_ADDR",
        example: "0.0.0.0:9090",
        secret: false,
        parse: |v, c| {
            c.metrics_addr = match v.trim() {
                "" => None,
                v => Some(v.parse().map_err(|_| {
                    "expected an IP address and port such as 0.0.0.0:9090 or 127.0.0.1:0".to_owned()
                })?),
            };
            Ok(())
        },
    },
];

/// A file path (not checked here: the connection reads it, and says so when it cannot).
fn path(value: &str) -> Result<PathBuf, String> {
    if value.trim().is_empty() {
        return Err("expected a file path".into());
    }
    Ok(PathBuf::from(value))
}

/// A count of attempts; `zero` says what 0 means.
fn count(value: &str, zero: &str) -> Result<u32, String> {
    let n = whole(value, 0, u64::from(u32::MAX), zero)?;
    Ok(u32::try_from(n).expect("checked range"))
}

/// `RPC_REPLY_TO`: comma-separated queue name patterns; empty means none.
fn reply_to_patterns(value: &str) -> Result<Vec<String>, String> {
    let mut patterns = Vec::new();
    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if p.len() > 255 || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("expected comma-separated queue name patterns (at most 255 bytes each, no spaces; * matches any run of characters)".into());
        }
        if p.chars().all(|c| c == '*') {
            return Err(
                "a pattern of only * would let any caller direct replies into any queue".into(),
            );
        }
        patterns.push(p.to_owned());
    }
    Ok(patterns)
}

/// `ROUTE_ALLOW`: `route=caller,caller;route=caller`; spaces around names are ignored,
/// `route=` admits nobody, and a route may be named once.
fn route_allow(value: &str) -> Result<Vec<(String, AllowList)>, String> {
    let mut lists: Vec<(String, AllowList)> = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((route, callers)) = entry.split_once('=') else {
            return Err(format!(
                "entry {entry:?} has no `=`; entries are route=caller,caller separated by `;`"
            ));
        };
        let route = route.trim();
        if route.is_empty() || route.len() > 255 {
            return Err(format!(
                "entry {entry:?} names no route (a route is a queue name of 1 to 255 bytes)"
            ));
        }
        if lists.iter().any(|(r, _)| r == route) {
            return Err(format!("route {route} is named twice"));
        }
        let callers = callers.split(',').map(str::trim).filter(|c| !c.is_empty());
        lists.push((route.to_owned(), AllowList::new(callers)));
    }
    Ok(lists)
}
