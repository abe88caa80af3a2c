//! URLs as Ferry may print them: whatever a user could have put a secret in (a user-info's
//! password, a query's values such as `?code=` or `?sig=`) is replaced by `***` before a URL goes to
//! an error, a log line or a bookkeeping table. Works on text that is not a valid URL too, since
//! that is exactly what an error about a bad URL has in hand.

/// `url` with the user-info's password and every query value hidden.
pub fn url(text: &str) -> String {
    let (before_query, query) = match text.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (text, None),
    };
    // The authority ends at the first '/' after the scheme (or the text's start).
    let authority_start = before_query.find("://").map_or(0, |i| i + 3);
    let authority_end = before_query[authority_start..]
        .find('/')
        .map_or(before_query.len(), |i| authority_start + i);
    let authority = &before_query[authority_start..authority_end];
    let mut out = String::with_capacity(text.len());
    out.push_str(&before_query[..authority_start]);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            if user_info.contains(':') {
                out.push_str(&format!("{user}:***@{host}"));
            } else {
                out.push_str(&format!("{user}@{host}"));
            }
        }
        None => out.push_str(authority),
    }
    out.push_str(&before_query[authority_end..]);
    if let Some(query) = query {
        let hidden: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&hidden.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_any_part_of_a_url_are_hidden() {
        for (written, shown) in [
            (
                "postgres://me:hunter2@db.example.com:5432/shop",
                "postgres://me:***@db.example.com:5432/shop",
            ),
            (
                "pguser:hunter2@db.example.com/shop",
                "pguser:***@db.example.com/shop",
            ),
            (
                "https://app:s3cret@crm.example.com/api/data/v9.2?code=abc&x=1",
                "https://app:***@crm.example.com/api/data/v9.2?code=***&x=***",
            ),
            (
                "https://crm.example.com/api/data/v9.2",
                "https://crm.example.com/api/data/v9.2",
            ),
            ("sqlite://out/w.db", "sqlite://out/w.db"),
            ("me@host/db", "me@host/db"),
        ] {
            assert_eq!(super::url(written), shown, "{written}");
        }
    }
}
