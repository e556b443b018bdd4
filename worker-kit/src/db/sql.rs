//! Building SQL text safely: identifiers quoted, values always bound as parameters.

/// Quotes an identifier for PostgreSQL (`items` → `"items"`, `a"b` → `"a""b"`). A dotted
/// name (`app.items`) is quoted part by part.
pub fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// `$1, $2, ... $n` starting at `first`.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"a", "b"` for column names.
pub(crate) fn column_list(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("items"), "\"items\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("MixedCase"), "\"MixedCase\"");
        assert_eq!(quote_ident("app.items"), "\"app\".\"items\"");
        assert_eq!(
            quote_ident("a\"b; DROP TABLE x"),
            "\"a\"\"b; DROP TABLE x\""
        );
    }

    #[test]
    fn lists() {
        assert_eq!(placeholders(1, 3), "$1, $2, $3");
        assert_eq!(placeholders(2, 1), "$2");
        assert_eq!(column_list(&["id", "name"]), "\"id\", \"name\"");
    }
}
