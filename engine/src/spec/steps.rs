//! The `[[steps]]` of a pipeline file: each a named query over the sources and the steps before it,
//! `@resultN` replaced by the step's name.

use toml::Spanned;

use super::raw::RawStep;
use super::*;

impl Checker<'_> {
    pub(super) fn step(
        &mut self,
        step: Spanned<RawStep>,
        known: &[String],
        before: &[Step],
        connections: &BTreeMap<String, Arc<dyn Connection>>,
    ) -> Option<Step> {
        let raw = step.into_inner();
        let connection = match raw.connection {
            Some(c) => Some(self.database(c, connections)?),
            None => None,
        };
        let name = self.table_name(raw.name, known)?;
        let sql_span = raw.sql.span();
        let sql = raw.sql.into_inner();
        if !self.check_placeholders(&sql, sql_span.clone()) {
            return None;
        }
        let sql = self.replace_result_refs(&sql, sql_span.clone(), before)?;
        if sql.trim().is_empty() {
            self.errors.push(
                self.loc
                    .error(sql_span, format!("step \"{name}\" has no SQL"))
                    .hint("sql = \"SELECT ... FROM <source or earlier step>\""),
            );
            return None;
        }
        Some(Step {
            name,
            description: raw.description,
            sql,
            sql_span,
            connection,
        })
    }

    /// `@result1` means the first step's table, `@result2` the second's, and so on.
    pub(super) fn replace_result_refs(
        &mut self,
        sql: &str,
        span: std::ops::Range<usize>,
        before: &[Step],
    ) -> Option<String> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(at) = rest.find("@result") {
            out.push_str(&rest[..at]);
            let after = &rest[at + "@result".len()..];
            let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
            let n: usize = digits.parse().unwrap_or(0);
            match n.checked_sub(1).and_then(|i| before.get(i)) {
                Some(step) => out.push_str(&step.name),
                None => {
                    let line = sql[..sql.len() - rest.len() + at].matches('\n').count();
                    let available = if before.is_empty() {
                        "none: this is the first step".to_string()
                    } else {
                        format!("@result1 to @result{}", before.len())
                    };
                    self.errors.push(
                        self.loc
                            .error_in(
                                span,
                                line,
                                format!("@result{digits} does not name an earlier step"),
                            )
                            .hint(format!(
                                "@resultN is the N-th step's result; available here: {available}"
                            )),
                    );
                    return None;
                }
            }
            rest = &after[digits.len()..];
        }
        out.push_str(rest);
        Some(out)
    }
}
