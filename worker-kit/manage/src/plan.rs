//! A migration plan: ordered statements, each tagged with its hazard, and grouped into the
//! steps (transactions) they run in.

use std::fmt;

/// What can go wrong when a statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Hazard {
    /// Takes a lock that blocks writes while it scans or builds (a plain index build, a
    /// constraint validated under a write lock, NOT NULL checked by a scan).
    Lock,
    /// Rewrites a table under ACCESS EXCLUSIVE (a column type whose storage changes,
    /// `int` → `bigint`; a column added with a volatile default). Refused on a table with
    /// rows without `--allow-hazard rewrite`.
    Rewrite,
    /// Drops an object that holds no data (view, index, function, constraint, trigger).
    Drop,
    /// Loses data (drops a table, column, sequence, type or schema; narrows a column's type;
    /// makes a plain column generated). Refused without `--unsafe`.
    DataLoss,
    /// Weakens access control (drops a policy, disables or stops forcing row-level
    /// security). Refused without `--unsafe`.
    Security,
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hazard::Lock => "lock",
            Hazard::Rewrite => "rewrite",
            Hazard::Drop => "drop",
            Hazard::DataLoss => "data loss",
            Hazard::Security => "security",
        })
    }
}

/// One statement of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// The SQL, without the final `;`.
    pub sql: String,
    /// Its hazard, if any.
    pub hazard: Option<Hazard>,
    /// Whether it must run outside any transaction block (`CREATE INDEX CONCURRENTLY`,
    /// `ALTER TYPE ... ADD VALUE`): it runs alone, in its place in the order.
    pub outside_transaction: bool,
    /// The table that exists already (and may have rows) whose lock it takes: it runs in a
    /// transaction of its own, so no lock is held longer than the statement, and a lock
    /// not had within `lock_timeout` is retried without redoing other statements.
    pub locks: Option<String>,
    /// What undoes a failed run of it (`DROP INDEX CONCURRENTLY IF EXISTS` after a failed
    /// concurrent build, which leaves an invalid index behind).
    pub undo_failed: Option<String>,
}

/// The statements that run together: one transaction, or one statement alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Its statements, in order.
    pub steps: Vec<&'a Step>,
    /// Whether they run inside `BEGIN` ... `COMMIT`.
    pub transaction: bool,
}

impl Batch<'_> {
    /// The tables whose locks it takes.
    pub fn locks(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| s.locks.as_deref())
    }

    /// How it is described in a printed plan.
    fn describe(&self) -> String {
        let mut locks: Vec<&str> = self.locks().collect();
        locks.dedup();
        if !self.transaction {
            let what = if self.steps.iter().any(|s| s.sql.contains(" CONCURRENTLY ")) {
                "CONCURRENTLY: writes go on while it runs"
            } else {
                "it cannot run inside a transaction block"
            };
            format!("no transaction ({what})")
        } else if locks.is_empty() {
            "one transaction".to_owned()
        } else {
            format!(
                "its own transaction, locking {} (waits at most lock_timeout for the lock)",
                locks.join(", ")
            )
        }
    }
}

/// What turns one schema into another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The statements, in the order they must run.
    pub steps: Vec<Step>,
    /// Differences the plan cannot express (e.g. an enum value removed): they need a
    /// hand-written migration.
    pub unsupported: Vec<String>,
    /// Statements that apply only while their table is empty (a NOT NULL column without a
    /// default): (table, statement). `sync` checks the target and refuses when one has rows.
    pub needs_empty: Vec<(String, String)>,
    /// Tables dropped and created again because they switch between plain and partitioned
    /// (PostgreSQL cannot turn one into the other): `sync` refuses the plan when one has
    /// rows, even with `--unsafe`.
    pub remade_tables: Vec<String>,
    /// Whether functions are created whose SQL bodies name objects created later in the
    /// plan: the session runs with `check_function_bodies = off`, as pg_dump's scripts do.
    pub lax_bodies: bool,
    /// Kinds of objects the model has that manage does not compare (`statistics objects
    /// (2)`): `diff` and `sync` list them, so "in sync" never hides them.
    pub not_compared: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.unsupported.is_empty()
    }

    /// Steps that lose data.
    pub fn destructive(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| s.hazard == Some(Hazard::DataLoss))
    }

    /// Steps `sync` refuses without `--unsafe`: those that lose data or weaken access
    /// control.
    pub fn refused(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s.hazard, Some(Hazard::DataLoss | Hazard::Security)))
    }

    /// The statements grouped as they run. With `atomic`, statements that cannot run in a
    /// transaction come first and all others run in one transaction (all or nothing).
    /// Otherwise, in plan order: a statement that cannot run in a transaction runs alone;
    /// one that locks an existing table runs in a transaction of its own; consecutive
    /// others (new objects, which no one else uses yet) share one.
    pub fn batches(&self, atomic: bool) -> Vec<Batch<'_>> {
        let mut out: Vec<Batch<'_>> = Vec::new();
        if atomic {
            for s in self.steps.iter().filter(|s| s.outside_transaction) {
                out.push(Batch {
                    steps: vec![s],
                    transaction: false,
                });
            }
            let inside: Vec<&Step> = self
                .steps
                .iter()
                .filter(|s| !s.outside_transaction)
                .collect();
            if !inside.is_empty() {
                out.push(Batch {
                    steps: inside,
                    transaction: true,
                });
            }
            return out;
        }
        for s in &self.steps {
            let alone = s.outside_transaction || s.locks.is_some();
            match out.last_mut() {
                Some(last) if !alone && last.transaction && last.locks().next().is_none() => {
                    last.steps.push(s);
                }
                _ => out.push(Batch {
                    steps: vec![s],
                    transaction: !s.outside_transaction,
                }),
            }
        }
        out
    }

    /// The plan as it runs in steps (see [`Plan::batches`]), as an SQL script: hazards as
    /// comments, each step headed by what it is.
    pub fn to_sql(&self) -> String {
        self.render(false)
    }

    /// The plan as an SQL script, in steps or (`atomic`) as one transaction.
    pub fn render(&self, atomic: bool) -> String {
        let mut out = String::new();
        for u in &self.unsupported {
            out.push_str(&format!("-- NOT HANDLED (write this by hand): {u}\n"));
        }
        for (table, sql) in &self.needs_empty {
            out.push_str(&format!(
                "-- FAILS IF {table} HAS ROWS: {sql} (give the column a DEFAULT, or add it \
                 nullable, fill it, then SET NOT NULL)\n"
            ));
        }
        for table in &self.remade_tables {
            out.push_str(&format!(
                "-- LOSES THE ROWS OF {table}: it switches between plain and partitioned and is \
                 dropped and created again (with rows, do it by hand: create the new table, move \
                 the rows, swap the names)\n"
            ));
        }
        if self.lax_bodies && !self.steps.is_empty() {
            // SQL-language function bodies may name tables created later in the plan.
            out.push_str("SET check_function_bodies = off;\n\n");
        }
        let batches = self.batches(atomic);
        let count = batches.len();
        for (i, b) in batches.iter().enumerate() {
            out.push_str(&format!("-- Step {} of {count}: {}\n", i + 1, b.describe()));
            if b.transaction {
                out.push_str("BEGIN;\n");
            }
            for s in &b.steps {
                if let Some(h) = s.hazard {
                    out.push_str(&format!("-- hazard: {h}\n"));
                }
                out.push_str(&s.sql);
                out.push_str(";\n");
            }
            if b.transaction {
                out.push_str("COMMIT;\n");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(sql: &str, locks: Option<&str>, outside: bool) -> Step {
        Step {
            sql: sql.into(),
            locks: locks.map(str::to_owned),
            outside_transaction: outside,
            ..Step::default()
        }
    }

    #[test]
    fn statements_on_existing_tables_run_in_their_own_transactions() {
        let plan = Plan {
            steps: vec![
                st("CREATE TABLE a (id int)", None, false),
                st("CREATE TABLE b (id int)", None, false),
                st("ALTER TABLE t ADD COLUMN c int", Some("t"), false),
                st("CREATE INDEX CONCURRENTLY i ON t (c)", Some("t"), true),
                st("CREATE VIEW v AS SELECT 1", None, false),
            ],
            ..Plan::default()
        };
        let shape: Vec<(usize, bool)> = plan
            .batches(false)
            .iter()
            .map(|b| (b.steps.len(), b.transaction))
            .collect();
        assert_eq!(shape, vec![(2, true), (1, true), (1, false), (1, true)]);
        let atomic: Vec<(usize, bool)> = plan
            .batches(true)
            .iter()
            .map(|b| (b.steps.len(), b.transaction))
            .collect();
        assert_eq!(atomic, vec![(1, false), (4, true)]);
        let sql = plan.to_sql();
        assert!(
            sql.contains("-- Step 3 of 4: no transaction (CONCURRENTLY"),
            "{sql}"
        );
        assert!(
            sql.contains("-- Step 2 of 4: its own transaction, locking t"),
            "{sql}"
        );
    }
}
