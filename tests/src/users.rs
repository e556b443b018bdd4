//! Real broker users for a test, made and removed through RabbitMQ's management API (or,
//! where the management plugin is not enabled, with `rabbitmqctl` on the broker's host, as
//! the broker fixture does): the identities whose `user_id` the broker checks.

use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::Engine as _;

/// The management API (`RABBITMQ_MANAGEMENT_URL`, default the local node's) and the
/// administrator it is used as (`RABBITMQ_MANAGEMENT_USER` / `_PASSWORD`, default guest).
fn management() -> (String, String) {
    let url = std::env::var("RABBITMQ_MANAGEMENT_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:15672".to_owned());
    let user = std::env::var("RABBITMQ_MANAGEMENT_USER").unwrap_or_else(|_| "guest".to_owned());
    let password =
        std::env::var("RABBITMQ_MANAGEMENT_PASSWORD").unwrap_or_else(|_| "guest".to_owned());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    (
        url.trim_end_matches('/').to_owned(),
        format!("Basic {basic}"),
    )
}

/// Why a management request failed.
enum Failure {
    /// Nothing answers on the management port: the plugin is not enabled.
    NoApi,
    /// The API answered with an error.
    Refused(String),
}

/// Sends one management request; `body` is JSON.
fn call(method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<(), Failure> {
    let (base, auth) = management();
    let url = format!("{base}{path}");
    let agent = ureq::Agent::new_with_defaults();
    let result = match (method, body) {
        ("PUT", Some(b)) => agent
            .put(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        _ => return Err(Failure::Refused(format!("unsupported {method}"))),
    };
    match result {
        Ok(_) => Ok(()),
        Err(ureq::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(Failure::NoApi)
        }
        Err(e) => Err(Failure::Refused(format!("{method} {url}: {e}"))),
    }
}

/// `rabbitmqctl args`, with `stdin` written to it (a password never goes in arguments,
/// which other users of the machine can read).
fn rabbitmqctl(args: &[&str], stdin: &str) -> Result<(), String> {
    let mut child = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .map_err(|e| format!("rabbitmqctl stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Makes `user` with `password` and the `[configure, write, read]` permissions on `vhost`.
fn add_user(
    user: &str,
    password: &str,
    vhost: &str,
    [configure, write, read]: [&str; 3],
) -> Result<(), String> {
    let encoded = url::form_urlencoded::byte_serialize(vhost.as_bytes()).collect::<String>();
    let made = call(
        "PUT",
        &format!("/api/users/{user}"),
        Some(&serde_json::json!({"password": password, "tags": ""})),
    );
    match made {
        Ok(()) => call(
            "PUT",
            &format!("/api/permissions/{encoded}/{user}"),
            Some(&serde_json::json!({"configure": configure, "write": write, "read": read})),
        )
        .map_err(|e| match e {
            Failure::NoApi => "the management API went away".to_owned(),
            Failure::Refused(why) => why,
        }),
        Err(Failure::Refused(why)) => Err(why),
        Err(Failure::NoApi) => {
            rabbitmqctl(&["add_user", user], password)?;
            rabbitmqctl(
                &["set_permissions", "-p", vhost, user, configure, write, read],
                "",
            )
        }
    }
}

fn delete_user(user: &str) -> Result<(), String> {
    match call("DELETE", &format!("/api/users/{user}"), None) {
        Ok(()) => Ok(()),
        Err(Failure::Refused(why)) => Err(why),
        Err(Failure::NoApi) => rabbitmqctl(&["delete_user", user], ""),
    }
}

/// Users made for one test on the vhost of `AMQP_URL`, each with every permission there
/// and a random password; deleted when dropped (a test that fails leaves none behind).
pub struct BrokerUsers {
    prefix: String,
    made: Vec<String>,
}

impl BrokerUsers {
    /// Users will be named `t-<test>-<random>-<name>`.
    pub fn new(test: &str) -> Self {
        Self {
            prefix: format!(
                "t-{test}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            made: Vec::new(),
        }
    }

    /// The full user name for `name`.
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Makes user [`BrokerUsers::name`]`(name)` and returns its `AMQP_URL` (the tests'
    /// broker and vhost, logged in as the new user).
    ///
    /// # Panics
    ///
    /// When neither the management API nor `rabbitmqctl` makes the user.
    pub fn add(&mut self, name: &str) -> String {
        self.add_with_permissions(name, [".*", ".*", ".*"])
    }

    /// As [`BrokerUsers::add`], with `[configure, write, read]` as the user's permission
    /// patterns (`"^$"` allows nothing), to show what a refused user sees.
    ///
    /// # Panics
    ///
    /// When neither the management API nor `rabbitmqctl` makes the user.
    pub fn add_with_permissions(&mut self, name: &str, permissions: [&str; 3]) -> String {
        self.add_on(&crate::amqp_url(), name, permissions)
    }

    /// As [`BrokerUsers::add_with_permissions`], on the broker and vhost of `base_url` (a
    /// fixture's vhost, say) instead of `AMQP_URL`'s.
    ///
    /// # Panics
    ///
    /// When `base_url` does not parse, or neither the management API nor `rabbitmqctl`
    /// makes the user.
    pub fn add_on(&mut self, base_url: &str, name: &str, permissions: [&str; 3]) -> String {
        let user = self.name(name);
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut url = url::Url::parse(base_url).expect("the base URL parses");
        let vhost = match url.path().trim_start_matches('/') {
            "" => "/".to_owned(),
            path => percent_decode(path),
        };
        self.made.push(user.clone());
        if let Err(why) = add_user(&user, &password, &vhost, permissions) {
            panic!("could not make broker user {user}: {why}");
        }
        url.set_username(&user).expect("a user name in the URL");
        url.set_password(Some(&password))
            .expect("a password in the URL");
        url.to_string()
    }
}

impl Drop for BrokerUsers {
    fn drop(&mut self) {
        for user in self.made.drain(..) {
            if let Err(e) = delete_user(&user) {
                eprintln!("could not delete broker user {user}: {e}");
            }
        }
    }
}

/// `%2f` → `/`: the vhost as the broker names it.
fn percent_decode(path: &str) -> String {
    url::form_urlencoded::parse(format!("v={path}").as_bytes())
        .next()
        .map_or_else(|| path.to_owned(), |(_, v)| v.into_owned())
}
