//! Label values that a peer may influence, kept to a bounded set: a time series per value
//! costs the Prometheus server memory for as long as it keeps the series, so a caller
//! able to mint values could exhaust it.

use std::collections::HashSet;
use std::sync::Mutex;

/// What a value that is not admitted is reported as.
pub(crate) const OTHER: &str = "other";

/// The first `cap` distinct well-formed values are kept as they are; later ones, and any
/// value that does not look like a name, become [`OTHER`].
#[derive(Debug)]
pub(crate) struct Bounded {
    cap: usize,
    seen: Mutex<HashSet<String>>,
}

impl Bounded {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The label value to use for `value`.
    pub(crate) fn admit(&self, value: &str) -> String {
        if !is_name(value) {
            return OTHER.to_owned();
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() >= self.cap {
            return OTHER.to_owned();
        }
        seen.insert(value.to_owned());
        value.to_owned()
    }
}

/// A route or error-type name: at most 128 characters of letters, digits and `._-:`.
fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_values_then_folds_the_rest() {
        let b = Bounded::new(2);
        assert_eq!(b.admit("NotFound"), "NotFound");
        assert_eq!(b.admit("Conflict"), "Conflict");
        assert_eq!(b.admit("NotFound"), "NotFound");
        assert_eq!(b.admit("Third"), OTHER);
        assert_eq!(b.admit("has space"), OTHER);
        assert_eq!(b.admit(""), OTHER);
        assert_eq!(b.admit(&"x".repeat(129)), OTHER);
    }
}
