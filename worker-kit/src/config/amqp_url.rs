//! `AMQP_URL` read as a value: one URL or a comma-separated list of them (one per node of
//! a RabbitMQ cluster), each checked and shown with its password hidden. Here, below the
//! broker connection, so that the settings are checked when they are read; the connection
//! ([`amqp`](crate::amqp)'s endpoints) orders the nodes and connects to them.

use std::sync::Arc;

use lapin::tcp::OwnedTLSConfig;

use super::secret::Secret;

/// The broker URL used when `AMQP_URL` is not set: the local RabbitMQ's guest account.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// `AMQP_URL`, parsed once when it is read: the text (a [`Secret`]: it may hold passwords)
/// and the nodes it names, which the broker connection connects to as they are. It reads
/// as a `&str` for code that wants the text; build one with `"amqp://...".parse()`.
#[derive(Clone)]
pub struct AmqpUrl {
    text: Secret,
    nodes: Vec<Endpoint>,
}

impl AmqpUrl {
    /// `list` checked, or what is wrong with it (passwords hidden), for the settings table.
    pub(crate) fn parse_list(list: &str) -> Result<Self, String> {
        match parse(list) {
            Ok(nodes) => Ok(Self {
                text: list.into(),
                nodes,
            }),
            // One URL: the message the single-node user always got.
            Err(ListError::Malformed { problem, .. }) if !list.contains(',') => {
                Err(format!("not an AMQP URL ({problem})"))
            }
            Err(e) => Err(format!(
                "{e}; a list is comma-separated AMQP URLs, one per cluster node"
            )),
        }
    }

    /// The nodes, in the order the URL lists them.
    pub(crate) fn nodes(&self) -> &[Endpoint] {
        &self.nodes
    }

    /// The broker user every node logs in as.
    pub fn user(&self) -> &str {
        &self.nodes[0].user
    }

    /// The URL(s) with passwords hidden.
    pub fn shown(&self) -> String {
        self.text.shown()
    }
}

impl std::str::FromStr for AmqpUrl {
    type Err = crate::Error;

    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) naming `AMQP_URL`, the value with its
    /// passwords hidden, what is wrong and a good value.
    fn from_str(list: &str) -> Result<Self, crate::Error> {
        Self::parse_list(list).map_err(|problem| {
            super::reader::setting_error(
                "AMQP_URL",
                &Secret::from(list).shown(),
                &problem,
                DEFAULT_AMQP_URL,
            )
        })
    }
}

impl std::ops::Deref for AmqpUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text, f)
    }
}

impl std::fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.text, f)
    }
}

impl PartialEq for AmqpUrl {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl PartialEq<&str> for AmqpUrl {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<str> for AmqpUrl {
    fn eq(&self, other: &str) -> bool {
        self.text == *other
    }
}

/// One broker node: its URL, the same URL with the password hidden (for messages), the
/// user the URL logs in as, and the TLS settings an `amqps://` URL connects with.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) shown: String,
    /// What the client library logs in as (percent-decoded; `guest` when the URL names no
    /// user): the `user_id` every message of the process carries.
    pub(crate) user: String,
    /// The host and port the URL names (the port filled in from the scheme when it names
    /// none): the `server.address` / `server.port` of the process's trace spans.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Whether the URL is `amqps://`.
    pub(crate) tls: bool,
    /// Shared by every node of the list; holds the client key, so never printed.
    pub(crate) tls_config: Arc<OwnedTLSConfig>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Why an `AMQP_URL` list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListError {
    /// No URL at all (empty, or only commas and spaces).
    Empty,
    /// Entry `index` (1-based) does not parse; `shown` is that entry with its password
    /// hidden.
    Malformed {
        index: usize,
        shown: String,
        problem: String,
    },
    /// The entries log in as different users: a process has one identity, the `user_id`
    /// of everything it publishes, whichever node it is connected to.
    MixedUsers,
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("no broker URL in the list"),
            Self::Malformed {
                index,
                shown,
                problem,
            } => write!(f, "entry {index} ({shown}) is not an AMQP URL ({problem})"),
            Self::MixedUsers => f.write_str(
                "the URLs log in as different users; every node of the list must use the same user",
            ),
        }
    }
}

/// Why a URL's `frame_max` is refused: one below the broker's default would have the broker
/// close the connection on the kit's own publishes (sized for [`FRAME_MAX`]), and lapin, whose
/// receive buffer is 32 frames of the negotiated size, could not read every frame the broker
/// delivers from publishers with the broker's `frame_max` (issue 25.1). Without it in the URL
/// the broker's own is negotiated.
///
/// [`FRAME_MAX`]: crate::wire::headers::FRAME_MAX
fn frame_max_problem(frame_max: Option<u32>) -> Option<String> {
    let floor = crate::wire::headers::FRAME_MAX;
    let asked = usize::try_from(frame_max?).ok()?;
    (asked != 0 && asked < floor).then(|| {
        format!("frame_max={asked} is below {floor} (RabbitMQ's default), the frame size the kit's messages are sized for; remove frame_max from the URL to use the broker's")
    })
}

/// Splits `list` at commas and checks each URL. Spaces around entries are ignored; a comma
/// inside a password must be percent-encoded (`%2C`), as any reserved character in a URL.
pub(crate) fn parse(list: &str) -> Result<Vec<Endpoint>, ListError> {
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if entries.iter().all(|e| e.is_empty()) {
        return Err(ListError::Empty);
    }
    let endpoints = entries
        .into_iter()
        .enumerate()
        .map(|(i, url)| {
            let shown = crate::redact::url(url);
            if url.is_empty() {
                return Err(ListError::Malformed {
                    index: i + 1,
                    shown,
                    problem: "empty entry".into(),
                });
            }
            let parsed =
                url.parse::<lapin::uri::AMQPUri>()
                    .map_err(|problem| ListError::Malformed {
                        index: i + 1,
                        shown: shown.clone(),
                        // The parser quotes the URL it refused, password and all.
                        problem: problem.replace(url, &shown),
                    })?;
            if let Some(problem) = frame_max_problem(parsed.query.frame_max) {
                return Err(ListError::Malformed {
                    index: i + 1,
                    shown,
                    problem,
                });
            }
            Ok(Endpoint {
                url: url.to_owned(),
                shown,
                user: parsed.authority.userinfo.username,
                host: parsed.authority.host,
                port: parsed.authority.port,
                tls: parsed.scheme == lapin::uri::AMQPScheme::AMQPS,
                tls_config: Arc::default(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.windows(2).any(|w| w[0].user != w[1].user) {
        return Err(ListError::MixedUsers);
    }
    Ok(endpoints)
}
