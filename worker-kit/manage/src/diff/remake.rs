//! Sub-objects that PostgreSQL will not let a change go under: a column's type does not
//! change while a policy or a trigger's `WHEN`/`UPDATE OF` reads it, a function is not
//! dropped while a CHECK, an index or a policy calls it, a PRIMARY KEY or UNIQUE
//! constraint is not dropped while a foreign key stands on its index. Such a sub-object is
//! dropped before the change and made again, unchanged, after it.
//!
//! Which sub-objects use what is read from their definitions: `pg_depend` names only their
//! table. A name that matches more than it should makes an object again needlessly, never
//! leaves one in the way.

use std::collections::BTreeSet;

use crate::catalog::Catalog;

#[derive(Default)]
pub(super) struct Remake {
    /// (table, constraint).
    pub(super) constraints: BTreeSet<(String, String)>,
    pub(super) indexes: BTreeSet<String>,
    /// (table, policy).
    pub(super) policies: BTreeSet<(String, String)>,
    /// (table, trigger).
    pub(super) triggers: BTreeSet<(String, String)>,
}

/// Whether `def` names the identifier `word` (as a whole word, quoted or not).
pub(super) fn mentions(def: &str, word: &str) -> bool {
    let word = word.trim_matches('"');
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    def.match_indices(word).any(|(at, _)| {
        let before = def[..at].chars().next_back();
        let after = def[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The unqualified name of `schema.name` or `schema.name(args)`.
pub(super) fn bare_name(qualified: &str) -> &str {
    let without_args = qualified.split('(').next().unwrap_or(qualified);
    without_args
        .rsplit_once('.')
        .map_or(without_args, |(_, n)| n)
}

impl Remake {
    /// What reads `column` of `table` and stands in the way of its type changing:
    /// policies and triggers (indexes and constraints PostgreSQL rebuilds itself).
    pub(super) fn under_type_change(&mut self, from: &Catalog, table: &str, column: &str) {
        self.policies_and_triggers(from, table, column);
    }

    /// What reads `column` of `table`, which is dropped and added again: every sub-object
    /// on it would go with it.
    pub(super) fn under_remade_column(&mut self, from: &Catalog, table: &str, column: &str) {
        self.policies_and_triggers(from, table, column);
        self.checks_and_indexes(from, table, column, false);
    }

    /// What calls `name` on `table`: CHECKs, indexes, policies and triggers.
    pub(super) fn calling(&mut self, from: &Catalog, table: &str, name: &str) {
        self.policies_and_triggers(from, table, name);
        self.checks_and_indexes(from, table, name, true);
    }

    /// The foreign keys standing on `table`'s PRIMARY KEY or UNIQUE constraints.
    pub(super) fn referencing(&mut self, from: &Catalog, table: &str) {
        let bare = bare_name(table);
        for ((t, name), c) in &from.constraints {
            let Some(target) = c
                .definition
                .split_once(" REFERENCES ")
                .map(|(_, rest)| rest.split('(').next().unwrap_or(rest))
            else {
                continue;
            };
            if c.kind == 'f' && (target == table || target == bare) {
                self.constraints.insert((t.clone(), name.clone()));
            }
        }
    }

    fn policies_and_triggers(&mut self, from: &Catalog, table: &str, word: &str) {
        for (key, def) in &from.policies {
            if key.0 == table && mentions(def, word) {
                self.policies.insert(key.clone());
            }
        }
        for (key, def) in &from.triggers {
            if key.0 == table && mentions(def, word) {
                self.triggers.insert(key.clone());
            }
        }
    }

    fn checks_and_indexes(&mut self, from: &Catalog, table: &str, word: &str, checks_only: bool) {
        for (key, c) in &from.constraints {
            let kinds: &[char] = if checks_only {
                &['c']
            } else {
                &['c', 'u', 'p', 'x']
            };
            if key.0 == table && kinds.contains(&c.kind) && mentions(&c.definition, word) {
                self.constraints.insert(key.clone());
            }
        }
        for (name, (t, def)) in &from.indexes {
            // An index's definition names its own table and index: only what follows
            // `USING` (its columns and predicate) counts.
            let body = def.split_once(" USING ").map_or(def.as_str(), |(_, b)| b);
            if t == table && mentions(body, word) {
                self.indexes.insert(name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only() {
        assert!(mentions("USING ((a > 0))", "a"));
        assert!(!mentions("FOR ALL USING ((abc > 0))", "a"));
        assert!(mentions("CHECK ((public.f(a) > 0))", "f"));
        assert!(mentions("UPDATE OF \"Mixed\" ON", "\"Mixed\""));
        assert_eq!(bare_name("public.f(x integer)"), "f");
        assert_eq!(bare_name("public.t"), "t");
    }
}
