//! A migration plan: ordered statements, each tagged with its hazard.

use std::fmt;

/// What can go wrong when a statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hazard {
    /// Takes a lock that blocks writes while it scans or builds (index, NOT NULL, constraint).
    Lock,
    /// Rewrites a table (column type change).
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The SQL, without the final `;`.
    pub sql: String,
    /// Its hazard, if any.
    pub hazard: Option<Hazard>,
    /// Whether it must run outside the transaction (e.g. `ALTER TYPE ... ADD VALUE`, run
    /// before the transaction so that later statements may use the value).
    pub outside_transaction: bool,
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

    /// The plan as an SQL script: hazards as comments, non-transactional statements first,
    /// the rest in one transaction.
    pub fn to_sql(&self) -> String {
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
        let render = |s: &Step, out: &mut String| {
            if let Some(h) = s.hazard {
                out.push_str(&format!("-- hazard: {h}\n"));
            }
            out.push_str(&s.sql);
            out.push_str(";\n\n");
        };
        let (outside, inside): (Vec<&Step>, Vec<&Step>) =
            self.steps.iter().partition(|s| s.outside_transaction);
        if !outside.is_empty() {
            out.push_str("-- These cannot run inside a transaction block; they run first.\n");
            for s in outside {
                render(s, &mut out);
            }
        }
        if !inside.is_empty() {
            out.push_str("BEGIN;\n\n");
            for s in inside {
                render(s, &mut out);
            }
            out.push_str("COMMIT;\n");
        }
        out
    }
}
