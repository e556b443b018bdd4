//! Reading model files and dumps, splitting them into statements, and loading them into a
//! shadow database.
//!
//! sqlparser's tokenizer splits the text (it knows quotes, dollar quotes and comments), so
//! each statement keeps its file and line for error messages. The server is the real
//! parser: a statement is sent as written. Files load in name order; a statement that
//! fails because something it references does not exist yet (defined in a later file) is
//! retried after the others, so `a.sql` may use a table from `z.sql`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::target::pg_message;

/// A file of SQL.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// One statement and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement as written (without the final `;`).
    pub sql: String,
    /// 1-based line of its first token.
    pub line: usize,
}

fn is_query_file(name: &str) -> bool {
    name == "queries.sql" || name.ends_with(".queries.sql")
}

/// Reads `dir/**/*.sql` in path order, skipping query files (`queries.sql`,
/// `*.queries.sql`), which hold named queries rather than schema.
///
/// # Errors
///
/// When the directory is missing or a file cannot be read.
pub fn load_models(dir: &Path) -> anyhow::Result<Vec<ModelFile>> {
    if !dir.is_dir() {
        bail!("{} is not a directory of model files", dir.display());
    }
    let mut paths = Vec::new();
    collect(dir, &mut paths)?;
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            Ok(ModelFile { path, text })
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sql")
            && !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_query_file)
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Splits SQL text into statements.
///
/// # Errors
///
/// `line: message` when the text cannot be tokenized (an unterminated string or comment).
pub fn split_statements(text: &str) -> Result<Vec<Statement>, String> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| format!("{}: {}", e.location.line, e.message))?;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, column: u64| -> usize {
        let start = line_starts
            .get((line.max(1) - 1) as usize)
            .copied()
            .unwrap_or(text.len());
        let rest = &text[start..];
        rest.char_indices()
            .nth((column.max(1) - 1) as usize)
            .map_or(text.len(), |(i, _)| start + i)
    };
    let mut out = Vec::new();
    let mut begin: Option<(usize, usize)> = None;
    for t in &tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => {
                if let Some((from, line)) = begin.take() {
                    let to = offset(t.span.start.line, t.span.start.column);
                    out.push(Statement {
                        sql: text[from..to].trim().to_owned(),
                        line,
                    });
                }
            }
            _ => {
                if begin.is_none() {
                    begin = Some((
                        offset(t.span.start.line, t.span.start.column),
                        t.span.start.line as usize,
                    ));
                }
            }
        }
    }
    if let Some((from, line)) = begin {
        let sql = text[from..].trim().to_owned();
        if !sql.is_empty() {
            out.push(Statement { sql, line });
        }
    }
    Ok(out)
}

/// A `pg_dump --schema-only` file, minus what a shadow database cannot or need not run:
/// psql meta-commands (`\connect`, `\restrict`) and ownership. Privileges stay: they are
/// compared (a grant to a role this server does not have is skipped, with a warning).
pub(crate) fn dump_statements(text: &str) -> Result<Vec<Statement>, String> {
    // Blank out meta-command lines, keeping line numbers.
    let cleaned: String = text
        .lines()
        .map(|l| if l.starts_with('\\') { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(split_statements(&cleaned)?
        .into_iter()
        .filter(|s| !is_owner_change(&s.sql))
        .collect())
}

/// `ALTER <object> OWNER TO <role>`, as pg_dump writes it: the words must end the
/// statement (a comment or function body that merely mentions them is kept).
fn is_owner_change(sql: &str) -> bool {
    let words: Vec<&str> = sql.split_whitespace().collect();
    words.len() >= 5
        && words[0].eq_ignore_ascii_case("ALTER")
        && words[words.len() - 3].eq_ignore_ascii_case("OWNER")
        && words[words.len() - 2].eq_ignore_ascii_case("TO")
}

fn is_privilege(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or("");
    first.eq_ignore_ascii_case("GRANT") || first.eq_ignore_ascii_case("REVOKE")
}

/// Whether a statement ends or nests the loading transaction.
fn is_transaction_control(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "BEGIN"
            | "START"
            | "COMMIT"
            | "END"
            | "ROLLBACK"
            | "ABORT"
            | "SAVEPOINT"
            | "RELEASE"
            | "PREPARE"
    )
}

fn references_something_missing(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::UNDEFINED_TABLE
            || *c == SqlState::UNDEFINED_OBJECT
            || *c == SqlState::UNDEFINED_FUNCTION
            || *c == SqlState::INVALID_SCHEMA_NAME
            || *c == SqlState::UNDEFINED_COLUMN
    })
}

/// Loads `files` into the database behind `client`, in one transaction: everything in one
/// round trip when it all works, otherwise statement by statement under savepoints
/// (retrying those that reference objects of later files) so a failure names its file
/// and line. Nothing runs outside the transaction, so statements that cannot run in one
/// (`DROP DATABASE`, `VACUUM`, ...) fail instead of running.
///
/// # Errors
///
/// `file:line: message` for the first statement that cannot run.
pub async fn load_into(client: &Client, files: &[ModelFile], dump: bool) -> anyhow::Result<()> {
    let lax = if dump { Lax::RoleGrants } else { Lax::Nothing };
    let mut statements = Vec::new();
    for f in files {
        let split = if dump {
            dump_statements(&f.text)
        } else {
            split_statements(&f.text)
        };
        let split = split.map_err(|e| anyhow!("{}:{e}", f.path.display()))?;
        for s in split {
            if is_transaction_control(&s.sql) {
                bail!(
                    "{}:{}: transaction control is not allowed in model files (manage loads them in its own transaction)",
                    f.path.display(),
                    s.line
                );
            }
            statements.push((f.path.clone(), s));
        }
    }
    client.batch_execute("BEGIN").await?;
    let loaded = load_in_transaction(client, statements, lax).await;
    let end = if loaded.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client.batch_execute(end).await;
    loaded?;
    ended.map_err(|e| anyhow!("loading the models: {}", pg_message(&e)))
}

/// What a load may skip.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lax {
    Nothing,
    /// A dump's GRANT/REVOKE to a role this server does not have (production's roles
    /// need not exist where the dump is loaded).
    RoleGrants,
}

async fn load_in_transaction(
    client: &Client,
    statements: Vec<(PathBuf, Statement)>,
    lax: Lax,
) -> anyhow::Result<()> {
    // Fast path: the whole schema in one round trip. (The savepoint goes on its own: a
    // syntax error anywhere in a query string fails the whole string before it runs.)
    client.batch_execute("SAVEPOINT manage_all").await?;
    let batch: String = statements
        .iter()
        .map(|(_, s)| format!("{};\n", s.sql))
        .collect();
    if client.batch_execute(&batch).await.is_ok() {
        return Ok(());
    }
    client
        .batch_execute("ROLLBACK TO SAVEPOINT manage_all")
        .await?;
    // One by one, to find the order, or the culprit.
    let mut pending = statements;
    loop {
        let before = pending.len();
        let mut deferred = Vec::new();
        let mut last_error = None;
        for (path, stmt) in pending {
            client.batch_execute("SAVEPOINT manage_one").await?;
            match client.batch_execute(&stmt.sql).await {
                Ok(()) => client.batch_execute("RELEASE SAVEPOINT manage_one").await?,
                Err(e) => {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT manage_one")
                        .await?;
                    let at = format!("{}:{}: {}", path.display(), stmt.line, pg_message(&e));
                    if lax == Lax::RoleGrants
                        && is_privilege(&stmt.sql)
                        && e.code() == Some(&SqlState::UNDEFINED_OBJECT)
                    {
                        eprintln!("manage: skipped (the role is not on this server): {at}");
                        continue;
                    }
                    if !references_something_missing(&e) {
                        bail!("{at}");
                    }
                    last_error = Some(at);
                    deferred.push((path, stmt));
                }
            }
        }
        if deferred.is_empty() {
            return Ok(());
        }
        if deferred.len() == before {
            bail!(
                "{}",
                last_error
                    .unwrap_or_else(|| "a statement references something no file defines".into())
            );
        }
        pending = deferred;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_lines_quotes_and_dollar_bodies() {
        let text = "-- a comment; not a split\nCREATE TABLE a (x text DEFAULT ';');\n\nCREATE FUNCTION f() RETURNS int\nLANGUAGE sql AS $$ SELECT 1; $$;\nSELECT 'it''s; fine'";
        let s = split_statements(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0],
            Statement {
                sql: "CREATE TABLE a (x text DEFAULT ';')".into(),
                line: 2
            }
        );
        assert_eq!(s[1].line, 4);
        assert!(s[1].sql.ends_with("$$ SELECT 1; $$"));
        assert_eq!(s[2].sql, "SELECT 'it''s; fine'");
    }

    #[test]
    fn unterminated_string_reports_the_line() {
        let err = split_statements("SELECT 1;\nSELECT 'oops").unwrap_err();
        assert!(err.starts_with("2:"), "{err}");
    }

    #[test]
    fn dumps_lose_meta_commands_and_owners() {
        let dump = "\\restrict abc\nSET statement_timeout = 0;\nCREATE TABLE public.t (id int);\nALTER TABLE public.t OWNER TO app;\nGRANT ALL ON TABLE public.t TO app;\n\\connect db\n";
        let s = dump_statements(dump).unwrap();
        let sql: Vec<&str> = s.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            vec![
                "SET statement_timeout = 0",
                "CREATE TABLE public.t (id int)",
                "GRANT ALL ON TABLE public.t TO app"
            ]
        );
        assert_eq!(s[1].line, 3);
    }

    #[test]
    fn dumps_keep_statements_that_only_mention_owner_to() {
        let dump = "COMMENT ON TABLE public.t IS 'see ALTER x OWNER TO y';\nCREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $$ SELECT ' OWNER TO ' $$;\nALTER FUNCTION public.f() OWNER TO app;\n";
        let s = dump_statements(dump).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
    }

    #[test]
    fn query_files_are_not_models() {
        assert!(is_query_file("queries.sql"));
        assert!(is_query_file("items.queries.sql"));
        assert!(!is_query_file("items.sql"));
    }
}
