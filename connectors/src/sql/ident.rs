//! Identifiers are quoted by the target's rules, never pasted into SQL: a table or column name from a
//! pipeline file cannot inject SQL, whatever quotes, backticks or semicolons it holds.

/// Quotes an identifier the ANSI way (SQLite, PostgreSQL): `"name"`, with `"` doubled inside.
pub fn quote_ansi(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
    fn quotes_are_doubled_so_names_cannot_escape() {
        assert_eq!(quote_ansi("plain"), "\"plain\"");
        assert_eq!(
            quote_ansi("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
    }
}
