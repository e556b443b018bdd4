//! Mapping rows to types and types to columns, without hand-written column lists: derive
//! [`Record`] (a table's row), [`FromRow`] (any query result), [`Insert`] (a new row) and
//! [`Changes`] (a partial update).

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A value built from a result row. Derived for structs (columns by field name), and
/// implemented for common scalars (read from the first column) so that `SELECT count(*)`
/// maps to `i64`.
pub trait FromRow: Sized {
    /// Reads the value.
    ///
    /// # Errors
    ///
    /// When a column is missing or has another type.
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error>;
}

macro_rules! scalar_from_row {
    ($($t:ty),* $(,)?) => {$(
        impl FromRow for $t {
            fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
                row.try_get(0)
            }
        }
    )*};
}

scalar_from_row!(
    bool,
    i16,
    i32,
    i64,
    f32,
    f64,
    String,
    uuid::Uuid,
    serde_json::Value,
    chrono::DateTime<chrono::Utc>,
    chrono::NaiveDate,
    chrono::NaiveDateTime,
    Vec<String>,
);

/// A table's row type: the table, its id column and its columns.
pub trait Record: FromRow + Send + Sync + 'static {
    /// The id's type.
    type Id: ToSql + Sync + Send + std::fmt::Debug + Clone + 'static;
    /// The table (may be schema-qualified, e.g. `app.items`).
    const TABLE: &'static str;
    /// The id column (keyset pagination orders by it).
    const ID: &'static str;
    /// Every column, in field order.
    const COLUMNS: &'static [&'static str];
    /// This row's id.
    fn id(&self) -> &Self::Id;
}

/// A new row: the columns it sets and their values (the rest take their defaults).
pub trait Insert: Sync {
    /// The columns set, in field order.
    fn columns(&self) -> &'static [&'static str];
    /// The values, in the same order.
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;
}

/// A partial update: only the fields that are `Some` change.
pub trait Changes: Sync {
    /// The `(column, value)` pairs to set.
    fn changes(&self) -> Vec<(&'static str, &(dyn ToSql + Sync))>;
}
