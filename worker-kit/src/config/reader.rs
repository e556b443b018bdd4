//! The one settings reader: a table with one row per variable (its name, a good value to
//! quote in errors, and the parser that checks its range and stores it), read the same way
//! for every group of settings (the kit's [`Config`](super::Config), the databases'
//! [`DbConfig`](crate::db::DbConfig), the outbox's
//! [`OutboxSettings`](crate::outbox::OutboxSettings)).
//!
//! Values are read as given (a number may have spaces around it); a value that does not
//! parse is reported in one shape for every group: the variable, its value, what is wrong
//! and a good value.

use std::collections::HashMap;
use std::time::Duration;

use crate::Error;

/// One variable of a group of settings `T`: read when set, else `T`'s default stays.
pub(crate) struct Var<T> {
    /// The environment variable.
    pub(crate) name: &'static str,
    /// A good value, quoted in error messages (`e.g. NAME=example`).
    pub(crate) example: &'static str,
    /// Whether the value may hold a password (a URL or DSN): errors then show it with its
    /// passwords hidden.
    pub(crate) secret: bool,
    /// Checks the value (range included) and stores it; the error says what is wrong.
    pub(crate) parse: fn(&str, &mut T) -> Result<(), String>,
}

/// The variables of one group that are set, by name.
pub(crate) struct Vars(HashMap<String, String>);

impl Vars {
    /// The pairs whose names `table` lists (others are not kept: they may hold secrets of
    /// other programs).
    pub(crate) fn of<T>(
        table: &[Var<T>],
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .filter(|(k, _)| table.iter().any(|v| v.name == k))
                .collect(),
        )
    }

    /// Every pair given (for groups whose variable names are not fixed, `DB_<KIND>_DSN`).
    pub(crate) fn all(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Applies every row of `table` whose variable is set to `into`, in table order; the
    /// first malformed value is the error.
    pub(crate) fn apply<T>(&self, table: &[Var<T>], into: &mut T) -> Result<(), Error> {
        for var in table {
            if let Some(value) = self.get(var.name) {
                (var.parse)(value, into).map_err(|problem| {
                    let shown = if var.secret {
                        super::secret::Secret::from(value).shown()
                    } else {
                        value.to_owned()
                    };
                    setting_error(var.name, &shown, &problem, var.example)
                })?;
            }
        }
        Ok(())
    }
}

/// The example of variable `name` in `table` (empty when it has none).
pub(crate) fn example_of<T>(table: &[Var<T>], name: &str) -> &'static str {
    table
        .iter()
        .find(|v| v.name == name)
        .map_or("", |v| v.example)
}

/// The one shape of a malformed-setting error, for every group of settings: the variable,
/// its value, what is wrong, and a good value.
pub(crate) fn setting_error(name: &str, value: &str, problem: &str, example: &str) -> Error {
    Error::Config(format!(
        "{name}={value:?}: {problem}, e.g. {name}={example}"
    ))
}

/// A whole number within `min..=max`; the error reads `expected a whole number{what}`, so
/// `what` says the range or the unit (` from 1 to 65535`).
pub(crate) fn whole(value: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number{what}")),
    }
}

/// Milliseconds; 0 is refused unless `zero_ok`.
pub(crate) fn millis(value: &str, zero_ok: bool) -> Result<Duration, String> {
    match value.trim().parse::<u64>() {
        Ok(0) if !zero_ok => Err("expected a positive number of milliseconds".into()),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err("expected a whole number of milliseconds".into()),
    }
}

/// A positive number of bytes.
pub(crate) fn bytes(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(0) => Err("expected a positive number of bytes".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of bytes".into()),
    }
}

/// One of `choices` (`(spelling, value)`, case-insensitive); the error lists `expected`.
pub(crate) fn choice<C: Copy>(
    value: &str,
    choices: &[(&str, C)],
    expected: &str,
) -> Result<C, String> {
    let lower = value.to_ascii_lowercase();
    choices
        .iter()
        .find(|(spelling, _)| *spelling == lower)
        .map(|(_, c)| *c)
        .ok_or_else(|| format!("expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Two {
        n: u64,
        d: Duration,
    }

    const TABLE: &[Var<Two>] = &[
        Var {
            name: "N",
            example: "5",
            secret: false,
            parse: |v, t| {
                t.n = whole(v, 1, 9, " from 1 to 9")?;
                Ok(())
            },
        },
        Var {
            name: "D_MS",
            example: "100",
            secret: false,
            parse: |v, t| {
                t.d = millis(v, false)?;
                Ok(())
            },
        },
    ];

    fn read(pairs: &[(&str, &str)]) -> Result<Two, Error> {
        let vars = Vars::of(TABLE, pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        let mut t = Two::default();
        vars.apply(TABLE, &mut t).map(|()| t)
    }

    #[test]
    fn rows_read_their_variable_and_report_in_one_shape() {
        assert_eq!(
            read(&[("N", " 7 "), ("D_MS", "20"), ("OTHER", "x")]).unwrap(),
            Two {
                n: 7,
                d: Duration::from_millis(20)
            }
        );
        assert_eq!(
            read(&[("N", "10")]).unwrap_err().to_string(),
            "configuration: N=\"10\": expected a whole number from 1 to 9, e.g. N=5"
        );
        assert_eq!(
            read(&[("D_MS", "0")]).unwrap_err().to_string(),
            "configuration: D_MS=\"0\": expected a positive number of milliseconds, e.g. D_MS=100"
        );
        assert_eq!(example_of(TABLE, "D_MS"), "100");
    }
}
