//! Name patterns where `*` stands for any run of characters: reply queues
//! (`RPC_REPLY_TO`) and callers on allow lists.

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none
/// included) and everything else matches itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("amq.gen-*", "amq.gen-abc"));
        assert!(glob("amq.gen-*", "amq.gen-"));
        assert!(!glob("amq.gen-*", "xamq.gen-abc"));
        assert!(glob("*.reply", "svc.reply"));
        assert!(!glob("*.reply", "svc.reply.x"));
        assert!(glob("a*b*c", "a-b-b-c"));
        assert!(!glob("a*b*c", "a-c"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(glob("billing-*", "billing-eu"));
        assert!(!glob("billing-*", "billing"));
    }
}
