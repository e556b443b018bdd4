//! Hiding secrets in connection strings before they reach a log line or an error message.

/// Returns `url` with its password replaced by `***` (`amqp://guest:***@host:5672/%2f`).
///
/// Works for any URL-shaped DSN (`amqp://`, `postgres://`, ...). A string that does not
/// parse as a URL is reduced to its scheme, because it may still hold a secret.
pub fn url(url: &str) -> String {
    match url::Url::parse(url) {
        // `amqp:user:pw@host` (no `//`) parses, but as an opaque path that may hold the
        // password: nothing of it is shown.
        Ok(parsed) if parsed.cannot_be_a_base() || !parsed.has_host() => {
            format!("{}:<no //host, hidden>", parsed.scheme())
        }
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // set_password only fails for URLs that cannot have credentials
                let _ = parsed.set_password(Some("***"));
            }
            hide_secret_params(&mut parsed);
            parsed.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparsable, hidden>"),
            None => "<unparsable, hidden>".to_owned(),
        },
    }
}

/// Replaces the value of query parameters that carry a secret (`?password=…`, libpq's
/// `sslpassword`, …) with `***`.
fn hide_secret_params(parsed: &mut url::Url) {
    let secret = |k: &str| {
        let k = k.to_ascii_lowercase();
        k.contains("password") || k == "pass" || k == "passwd" || k.contains("secret")
    };
    if !parsed.query_pairs().any(|(k, _)| secret(&k)) {
        return;
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if secret(&k) {
                "***".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_password() {
        assert_eq!(
            url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            url("postgres://app:p%40ss@db/main"),
            "postgres://app:***@db/main"
        );
    }

    #[test]
    fn keeps_urls_without_password() {
        assert_eq!(
            url("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
    }

    #[test]
    fn hides_password_parameters() {
        assert_eq!(
            url("postgres://app@db/main?password=s3cret&sslmode=require"),
            "postgres://app@db/main?password=***&sslmode=require"
        );
        assert!(!url("postgres://db/x?sslpassword=k3y").contains("k3y"));
    }

    #[test]
    fn url_without_slashes_is_hidden() {
        let shown = url("amqp:svc:pw123@127.0.0.1:5672/%2f");
        assert!(!shown.contains("pw123"), "{shown}");
        assert!(shown.starts_with("amqp:"), "{shown}");
    }

    #[test]
    fn unparsable_is_hidden() {
        assert!(!url("amqp://user:pw@[bad").contains("pw"));
    }
}
