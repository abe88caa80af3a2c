//! The dashboard's HTML: one page layout, tables from query answers, and escaping (every value
//! shown comes from a user's data or files).

use datafusion::prelude::SessionContext;

/// A query's answer as text, for a page.
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub async fn query(
        ctx: &SessionContext,
        sql: &str,
    ) -> Result<Table, datafusion::error::DataFusionError> {
        let (columns, rows) = crate::run::query_text(ctx, sql).await?;
        Ok(Table { columns, rows })
    }

    /// The table; `link` may make a cell a link (column, value, row) -> href.
    pub fn html(&self, link: impl Fn(&str, &str, &[String]) -> Option<String>) -> String {
        self.html_with(link, |_| false)
    }

    /// The table, with the cells of the columns `markup` names taken as HTML the page made itself.
    pub fn html_with(
        &self,
        link: impl Fn(&str, &str, &[String]) -> Option<String>,
        markup: impl Fn(&str) -> bool,
    ) -> String {
        let mut out = String::from("<table><thead><tr>");
        for c in &self.columns {
            out.push_str(&format!("<th>{}</th>", escape(c)));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            let status = self
                .columns
                .iter()
                .position(|c| c == "status")
                .map(|i| row[i].to_lowercase().replace(' ', "-"))
                .unwrap_or_default();
            out.push_str(&format!("<tr class=\"{}\">", escape(&status)));
            for (c, value) in self.columns.iter().zip(row) {
                let shown = if markup(c) {
                    value.clone()
                } else {
                    escape(value)
                };
                match link(c, value, row) {
                    Some(href) => out.push_str(&format!(
                        "<td><a href=\"{}\">{shown}</a></td>",
                        escape(&href)
                    )),
                    None => out.push_str(&format!("<td>{shown}</td>")),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }
}

/// Text safe inside HTML and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value as one segment of a URL path.
pub fn path(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A whole page: the title, a link home, the body.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}\
         table{{border-collapse:collapse;margin:.5rem 0}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}}\
         th{{background:#eef}}td{{white-space:pre-line}}nav{{margin:.5rem 0}}figure{{margin:1rem 0}}figcaption{{font-weight:600}}tr.failed td{{background:#fdd}}tr.partial-success td{{background:#ffd}}tr.running td{{background:#def}}\
         </style></head><body><p><a href=\"/\">Ferry</a></p><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_paths_encoded() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(path("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}
