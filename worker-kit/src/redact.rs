//! Hiding secrets in connection strings before they reach a log line or an error message.

/// Returns `url` with its password replaced by `***` (`amqp://guest:***@host:5672/%2f`).
///
/// Works for any URL-shaped DSN (`amqp://`, `postgres://`, ...). A string that does not
/// parse as a URL is reduced to its scheme, because it may still hold a secret.
pub fn url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // set_password only fails for URLs that cannot have credentials
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://<unparsable, hidden>"),
            None => "<unparsable, hidden>".to_owned(),
        },
    }
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
    fn unparsable_is_hidden() {
        assert!(!url("amqp://user:pw@[bad").contains("pw"));
    }
}
