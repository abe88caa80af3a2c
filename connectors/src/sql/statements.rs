//! The SQL every dialect writes alike, spelled with the dialect's quoting and column types: the
//! table a run creates, and the `ON CONFLICT` merge that PostgreSQL and SQLite share.

use arrow::datatypes::{Field, SchemaRef};

use crate::error::Result;
use crate::sink::WriteMode;

/// How a dialect spells a created table's columns.
pub struct Spelling<'a> {
    pub quote: fn(&str) -> String,
    /// A result column's type in the database; the flag says whether it is part of the key.
    pub column_type: &'a dyn Fn(&Field, bool) -> Result<String>,
    /// What a nullable column says: "" where NULL is the default, " NULL" where it is not.
    pub nullable: &'static str,
    /// After the closing parenthesis: " DEFAULT CHARSET = utf8mb4".
    pub suffix: &'static str,
}

/// `CREATE TABLE <table> (<column> <type> [NOT NULL], ..., PRIMARY KEY (<key>))`: the result's
/// columns, NOT NULL where the result says so and on the key. `table` is already quoted.
pub fn create_table(
    table: &str,
    schema: &SchemaRef,
    key: &[String],
    spell: &Spelling<'_>,
) -> Result<String> {
    let mut defs = Vec::new();
    for field in schema.fields() {
        let is_key = key.contains(field.name());
        let not_null = !field.is_nullable() || is_key;
        defs.push(format!(
            "{} {}{}",
            (spell.quote)(field.name()),
            (spell.column_type)(field, is_key)?,
            if not_null {
                " NOT NULL"
            } else {
                spell.nullable
            }
        ));
    }
    if !key.is_empty() {
        let key: Vec<String> = key.iter().map(|k| (spell.quote)(k)).collect();
        defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    Ok(format!(
        "CREATE TABLE {table} ({}){}",
        defs.join(", "),
        spell.suffix
    ))
}

/// `<insert> ON CONFLICT (<key>) DO NOTHING` for insert (or when every column is the key), else
/// `DO UPDATE SET` every other column from the row that conflicted (`excluded`). Names are quoted
/// here with `quote`; `insert` is the INSERT the clause follows.
pub fn on_conflict(
    insert: &str,
    columns: &[String],
    key: &[String],
    mode: WriteMode,
    quote: fn(&str) -> String,
) -> String {
    let conflict: Vec<String> = key.iter().map(|k| quote(k)).collect();
    let conflict = conflict.join(", ");
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = excluded.{0}", quote(c)))
        .collect();
    if mode == WriteMode::Insert || updates.is_empty() {
        format!("{insert} ON CONFLICT ({conflict}) DO NOTHING")
    } else {
        format!(
            "{insert} ON CONFLICT ({conflict}) DO UPDATE SET {}",
            updates.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Schema};

    use super::*;
    use crate::sql::ident::quote_ansi;

    #[test]
    fn created_tables_and_merges_read_alike_in_every_dialect() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let types = |f: &Field, _key: bool| -> Result<String> {
            Ok(if f.name() == "id" { "BIGINT" } else { "TEXT" }.to_string())
        };
        let spell = Spelling {
            quote: quote_ansi,
            column_type: &types,
            nullable: " NULL",
            suffix: " STRICT",
        };
        assert_eq!(
            create_table("\"t\"", &schema, &["id".into()], &spell).unwrap(),
            "CREATE TABLE \"t\" (\"id\" BIGINT NOT NULL, \"name\" TEXT NULL, PRIMARY KEY (\"id\")) STRICT"
        );
        let columns = ["id".to_string(), "name".to_string()];
        let key = ["id".to_string()];
        assert_eq!(
            on_conflict("INSERT x", &columns, &key, WriteMode::Upsert, quote_ansi),
            "INSERT x ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\""
        );
        assert_eq!(
            on_conflict("INSERT x", &columns, &key, WriteMode::Insert, quote_ansi),
            "INSERT x ON CONFLICT (\"id\") DO NOTHING"
        );
    }
}
