//! Takes `sslmode` and `sslrootcert` out of a DSN: tokio-postgres refuses `verify-ca`,
//! `verify-full` and `sslrootcert`, so they are read here and the rest is passed on as
//! written.

use crate::Error;

/// A DSN split into its TLS options and everything else.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) rest: String,
    pub(crate) sslmode: Option<String>,
    pub(crate) sslrootcert: Option<String>,
}

/// Whether `dsn` is in URL form (else `key=value`).
pub(crate) fn is_url(dsn: &str) -> bool {
    dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")
}

pub(crate) fn split_tls_options(dsn: &str) -> Result<Split, Error> {
    if is_url(dsn) {
        Ok(split_url(dsn))
    } else {
        split_key_values(dsn)
    }
}

/// URL form: the options are `&`-separated query parameters, percent-encoded. Only the
/// query is touched; the host part may be a list (`h1:5432,h2:5432`), which a URL parser
/// would refuse.
fn split_url(dsn: &str) -> Split {
    let mut split = Split {
        rest: dsn.to_owned(),
        sslmode: None,
        sslrootcert: None,
    };
    let Some((base, query)) = dsn.split_once('?') else {
        return split;
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = url::form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .unwrap_or_default();
        match key.as_str() {
            "sslmode" => split.sslmode = Some(value),
            "sslrootcert" => split.sslrootcert = Some(value),
            _ => kept.push(pair),
        }
    }
    split.rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    split
}

/// `key=value` form, as libpq reads it: spaces around `=` are allowed, a value is either
/// bare (ends at whitespace; `\` escapes the next character) or in single quotes (`\'` and
/// `\\` inside).
fn split_key_values(dsn: &str) -> Result<Split, Error> {
    let mut split = Split {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let bytes: Vec<char> = dsn.chars().collect();
    let mut i = 0;
    let mut kept: Vec<String> = Vec::new();
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != '=' && !bytes[i].is_whitespace() {
            i += 1;
        }
        let key: String = bytes[start..i].iter().collect();
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        if i == bytes.len() || bytes[i] != '=' {
            return Err(Error(format!(
                "not a PostgreSQL DSN (expected `=` after `{key}`)"
            )));
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        let value_start = i;
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == '\'' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => {
                        return Err(Error(format!(
                            "not a PostgreSQL DSN (unterminated quote in the value of `{key}`)"
                        )));
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_whitespace() {
                if bytes[i] == '\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        match key.as_str() {
            "sslmode" => split.sslmode = Some(value),
            "sslrootcert" => split.sslrootcert = Some(value),
            _ => kept.push(format!(
                "{key}={}",
                bytes[value_start..i].iter().collect::<String>()
            )),
        }
    }
    split.rest = kept.join(" ");
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_options_are_taken_out_and_the_rest_kept() {
        let s = split_tls_options(
            "postgres://u:p%26w@h1:5432,h2:5433/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            s.rest,
            "postgres://u:p%26w@h1:5432,h2:5433/db?application_name=x"
        );
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let s = split_tls_options("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(s.rest, "postgresql://h/db");
        let s = split_tls_options("postgres://h/db").unwrap();
        assert_eq!((s.rest.as_str(), s.sslmode), ("postgres://h/db", None));
    }

    #[test]
    fn key_value_options_are_taken_out_with_quotes_and_escapes() {
        let s = split_tls_options(
            "host=h user = u password='a\\' b' sslmode = verify-ca sslrootcert='/a b/ca.pem' dbname=d\\ b",
        )
        .unwrap();
        assert_eq!(s.rest, "host=h user=u password='a\\' b' dbname=d\\ b");
        assert_eq!(s.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/a b/ca.pem"));
        assert!(split_tls_options("host=h sslmode").is_err());
        assert!(split_tls_options("host='h").is_err());
    }
}
