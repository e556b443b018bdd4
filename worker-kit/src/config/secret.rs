//! Connection strings that may hold passwords (`AMQP_URL`, DSNs): kept whole for the code
//! that connects, shown with their passwords hidden everywhere else, so the settings that
//! hold them can derive `Debug`.

use std::ops::Deref;

/// A connection string (one URL, or a comma-separated list of them) whose `Debug` and
/// `Display` hide every password (`amqp://svc:***@host/%2f`). It reads as a `&str`
/// (`Deref`) for the code that connects.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The string itself, password and all: for connecting, never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The string with its passwords hidden.
    pub fn shown(&self) -> String {
        self.0
            .split(',')
            .map(crate::redact::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl PartialEq<str> for Secret {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Secret {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Secret {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Secret> for String {
    fn eq(&self, other: &Secret) -> bool {
        *self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_without_passwords_and_exposed_whole() {
        let s = Secret::from("amqp://u:pw1@n1/%2f,postgres://u:pw2@n2/db");
        for shown in [format!("{s:?}"), s.to_string()] {
            assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
            assert!(shown.contains("amqp://u:***@n1/%2f"), "{shown}");
        }
        assert_eq!(s.expose(), "amqp://u:pw1@n1/%2f,postgres://u:pw2@n2/db");
        assert_eq!(s, "amqp://u:pw1@n1/%2f,postgres://u:pw2@n2/db");
    }
}
