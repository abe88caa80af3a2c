//! Identifiers are quoted by the target's rules, never pasted into SQL: a table or column name from a
//! pipeline file cannot inject SQL, whatever quotes, backticks or semicolons it holds.

/// Quotes an identifier the ANSI way (SQLite, PostgreSQL): `"name"`, with `"` doubled inside.
pub fn quote_ansi(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal the ANSI way (DataFusion, SQLite, PostgreSQL's standard strings): `'text'`,
/// with `'` doubled inside, so that no value can end the literal.
pub fn string_literal_ansi(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The name of a helper table Ferry keeps beside `table` for one role ("stage", "keys", "old"):
/// `_ferry_<role>_<16 hex digits of a hash of the table's name>`. Short (under 32 bytes) and derived,
/// never the user's name plus a suffix: a server that cuts long names (PostgreSQL at 63 bytes, MySQL
/// refuses more than 64 characters) could otherwise make the helper's name the target's own, and a
/// clean-up `DROP TABLE` would drop the user's table. One rule for every dialect.
pub fn helper_name(table: &str, role: &str) -> String {
    // Stable across processes and versions, so a resumed run finds its own helpers.
    format!(
        "_ferry_{role}_{:016x}",
        crate::hash::fnv1a(table.as_bytes())
    )
}

/// Quotes a list of identifiers, comma separated.
pub fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ansi(n))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names_are_short_distinct_and_stable() {
        let long = "t".repeat(63);
        let longer = format!("{long}x");
        let stage = helper_name(&long, "stage");
        assert!(stage.len() < 40, "{stage}");
        assert_ne!(stage, helper_name(&longer, "stage"));
        assert_ne!(stage, helper_name(&long, "keys"));
        assert_eq!(stage, helper_name(&long, "stage"));
        assert!(helper_name("orders", "keys").starts_with("_ferry_keys_"));
    }

    #[test]
    fn quotes_are_doubled_so_names_cannot_escape() {
        assert_eq!(quote_ansi("plain"), "\"plain\"");
        assert_eq!(
            quote_ansi("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
    }
}

/// Quotes an identifier MySQL's way: `` `name` ``, with `` ` `` doubled inside.
pub fn quote_mysql(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A table name from a pipeline file: `name` or `schema.name` (the first dot separates them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((schema, name)) if !schema.is_empty() && !name.is_empty() => Self {
                schema: Some(schema.to_string()),
                name: name.to_string(),
            },
            _ => Self {
                schema: None,
                name: text.to_string(),
            },
        }
    }

    /// The helper table Ferry keeps beside this one for `role` (stage, keys, old): same schema,
    /// named by [`helper_name`].
    pub fn helper(&self, role: &str) -> Self {
        Self {
            schema: self.schema.clone(),
            name: helper_name(&self.to_string(), role),
        }
    }

    /// `"schema"."name"`, quoted the ANSI way.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ansi(s), quote_ansi(&self.name)),
            None => quote_ansi(&self.name),
        }
    }

    /// `` `schema`.`name` ``, quoted MySQL's way.
    pub fn quoted_mysql(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_mysql(s), quote_mysql(&self.name)),
            None => quote_mysql(&self.name),
        }
    }

    pub fn schema_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.schema.as_deref().unwrap_or(default)
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod table_name_tests {
    use super::*;

    #[test]
    fn schema_and_name_are_quoted_apart() {
        let t = TableName::parse("sales.or`d\"ers");
        assert_eq!(t.quoted(), "\"sales\".\"or`d\"\"ers\"");
        assert_eq!(t.quoted_mysql(), "`sales`.`or``d\"ers`");
        assert_eq!(TableName::parse("plain").quoted(), "\"plain\"");
    }
}
