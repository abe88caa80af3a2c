//! Each class of pipeline-file error, with the line it names and the fix it suggests.

use std::path::Path;

use super::*;
use ferry_connectors::files::FileFormat;

const GOOD: &str = r#"name = "orders-summary"

[connections.warehouse]
url = "sqlite://out/warehouse.db"

[sources.orders]
path = "data/orders.parquet"

[sources.customers]
path = "data/customers.csv"

[[steps]]
name = "paid"
sql = "SELECT * FROM orders WHERE paid"

[[steps]]
name = "summary"
sql = """
SELECT c.customer_id, count(*) AS orders
FROM @result1 p JOIN customers c ON c.customer_id = p.customer_id
GROUP BY c.customer_id
"""

[target]
connection = "warehouse"
table = "order_summary"
mode = "upsert"
key = ["customer_id"]
"#;

fn errors(text: &str) -> Vec<SpecError> {
    match Pipeline::parse(Path::new("/p/pipe.toml"), text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(SpecErrors(errors)) => errors,
    }
}

fn one_error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].to_string()
}

#[test]
fn a_good_pipeline_resolves_paths_and_result_references() {
    let p = Pipeline::parse(Path::new("/p/pipe.toml"), GOOD).unwrap();
    assert_eq!(p.name, "orders-summary");
    assert_eq!(p.sources.len(), 2);
    let orders = p.sources.iter().find(|s| s.name == "orders").unwrap();
    let Origin::File(file) = &orders.origin else {
        panic!("a file source")
    };
    assert_eq!(file.location, "/p/data/orders.parquet");
    assert_eq!(file.format, FileFormat::Parquet);
    assert!(
        p.steps[1].sql.contains("FROM paid p JOIN"),
        "{}",
        p.steps[1].sql
    );
    assert_eq!(p.target.options.mode, WriteMode::Upsert);
    assert_eq!(p.target.options.key, vec!["customer_id"]);
    // Unset: SQLite's own defaults (`Tuning`).
    assert_eq!((p.target.batch_size, p.target.workers), (8_192, 2));
    assert_eq!(p.state_dir, "/p/.ferry");
    assert_eq!(p.target.destination.connector().name(), "SQLite");
    assert_eq!(p.target.destination.name(), "order_summary");
    let conn = format!("{:?}", p.connections["warehouse"]);
    assert!(conn.contains("/p/out/warehouse.db"), "{conn}");
}

#[test]
fn unknown_key_names_line_and_suggests_the_right_one() {
    let text = GOOD.replace(
        "path = \"data/orders.parquet\"",
        "pth = \"data/orders.parquet\"",
    );
    let e = one_error(&text);
    assert!(
        e.starts_with("/p/pipe.toml:7:1: unknown field `pth`"),
        "{e}"
    );
    assert!(e.contains("hint: did you mean `path`?"), "{e}");
}

#[test]
fn bad_mode_names_line_and_lists_modes() {
    let text = GOOD.replace("mode = \"upsert\"", "mode = \"upsertt\"");
    let e = one_error(&text);
    assert!(
        e.starts_with("/p/pipe.toml:27:8: unknown write mode \"upsertt\""),
        "{e}"
    );
    assert!(e.contains("did you mean mode = \"upsert\"?"), "{e}");
}

#[test]
fn upsert_without_key_is_refused() {
    let text = GOOD.replace("key = [\"customer_id\"]\n", "");
    let e = one_error(&text);
    assert!(e.contains(":27:8: mode \"upsert\" needs a key"), "{e}");
    assert!(e.contains("add key = [\"customer_id\"]"), "{e}");
}

#[test]
fn result_reference_past_the_steps_names_its_line_inside_the_sql() {
    let text = GOOD.replace("FROM @result1 p", "FROM @result3 p");
    let e = one_error(&text);
    assert!(
        e.starts_with("/p/pipe.toml:20:1: @result3 does not name an earlier step"),
        "{e}"
    );
    assert!(e.contains("available here: @result1 to @result1"), "{e}");
}

#[test]
fn unknown_connection_suggests_the_declared_one() {
    let text = GOOD.replace("connection = \"warehouse\"", "connection = \"warehous\"");
    let e = one_error(&text);
    assert!(
        e.contains(":25:14: there is no connection named \"warehous\""),
        "{e}"
    );
    assert!(
        e.contains("did you mean connection = \"warehouse\"?"),
        "{e}"
    );
}

#[test]
fn missing_environment_variable_is_named_and_never_printed_as_a_value() {
    let text = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"postgres://loader@127.0.0.1/shop\"\npassword = \"${FERRY_TEST_NOT_SET_ANYWHERE}\"",
    );
    let e = one_error(&text);
    assert!(
        e.contains(":5:12: the environment variable FERRY_TEST_NOT_SET_ANYWHERE is not set"),
        "{e}"
    );
}

#[test]
fn several_problems_are_reported_together() {
    let text = GOOD
        .replace("mode = \"upsert\"", "mode = \"merge\"")
        .replace("[sources.customers]", "[sources.\"cust omers\"]");
    let all = errors(&text.replace(
        "key = [\"customer_id\"]",
        "key = [\"customer_id\"]\nbatch_size = 0",
    ));
    let text: Vec<String> = all.iter().map(|e| e.to_string()).collect();
    assert_eq!(all.len(), 3, "{text:#?}");
    assert!(
        text.iter()
            .any(|e| e.contains("\"cust omers\" cannot be used as a table name"))
    );
    assert!(
        text.iter()
            .any(|e| e.contains("unknown write mode \"merge\""))
    );
    assert!(
        text.iter()
            .any(|e| e.contains("batch_size must be between 1 and 1000000, not 0"))
    );
}

#[test]
fn syntax_errors_name_their_line() {
    let e = one_error(
        r#"name = "x"
[target
path = "a.csv"
"#,
    );
    assert!(e.starts_with("/p/pipe.toml:2:"), "{e}");
}

#[test]
fn missing_target_and_unknown_format_are_explained() {
    let e = one_error(
        r#"name = "x"
[sources.a]
path = "a.csv"
"#,
    );
    assert!(e.contains("missing field `target`"), "{e}");
    let e = one_error(
        r#"name = "x"
[sources.a]
path = "a.dat"
[target]
path = "o.parquet"
mode = "truncate"
"#,
    );
    assert!(
        e.contains(":3:8: cannot tell the format of \"a.dat\""),
        "{e}"
    );
    assert!(e.contains("add format = \"...\""), "{e}");
}

#[test]
fn a_single_source_without_steps_is_copied_whole() {
    let p = Pipeline::parse(
        Path::new("/p/pipe.toml"),
        r#"name = "copy"
[sources.a]
path = "a.csv"
[target]
path = "o.parquet"
mode = "truncate"
"#,
    )
    .unwrap();
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].sql, "SELECT * FROM a");
}

#[test]
fn durations_read_like_people_write_them() {
    assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("90"), None);
    assert_eq!(parse_duration("ten minutes"), None);
    // Values that once panicked or wrapped: refused, not a crash.
    assert_eq!(parse_duration("18446744073709551615s 1s"), None);
    assert_eq!(parse_duration("213503982334602d"), None);
    assert_eq!(parse_duration("367d"), None);
}

/// A connection whose URL is wrong is an error at its url line, never dropped (the run used to fail
/// later with `there is no connection named ...` at the target).
#[test]
fn a_bad_connection_url_is_an_error_at_its_line_and_postgresql_is_accepted() {
    let inline = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"postgres://bench:s3cret@db.example.com/shop\"",
    );
    let found = errors(&inline);
    let first = found[0].to_string();
    assert!(
        first.contains("pipe.toml:4:7") && first.contains("holds a password"),
        "{found:?}"
    );
    // One error, at its line: the target that names the connection does not add a second one.
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(!first.contains("s3cret"), "{first}");
    assert!(first.contains("password = \"${DB_PASSWORD}\""), "{first}");
    let unknown = GOOD.replace("sqlite://out/warehouse.db", "oracle://db/x");
    let message = errors(&unknown)[0].to_string();
    assert!(
        message.contains("pipe.toml:4:7") && message.contains("no connector for \"oracle://\""),
        "{message}"
    );
    let libpq = GOOD.replace(
        "sqlite://out/warehouse.db",
        "postgresql://loader@127.0.0.1:5432/shop",
    );
    let p = Pipeline::parse(Path::new("/p/pipe.toml"), &libpq).unwrap();
    assert_eq!(p.target.destination.connector().name(), "PostgreSQL");
}

#[test]
fn odata_keys_on_a_database_connection_are_errors_at_their_lines() {
    let odata = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"postgres://db.example.com/shop\"\nclient_id = \"app\"\ntoken_url = \"https://login.example.com/t\"",
    );
    let found: Vec<String> = errors(&odata).iter().map(|e| e.to_string()).collect();
    assert!(
        found.iter().any(|e| e.contains("pipe.toml:5:")
            && e.contains("client_id is not a key of a PostgreSQL connection")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("pipe.toml:6:") && e.contains("token_url")),
        "{found:?}"
    );
}

#[test]
fn a_user_or_password_on_an_odata_connection_is_an_error_at_its_line() {
    let odata = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"https://crm.example.com/api/data/v9.2\"\nauth = \"bearer\"\ntoken = \"t\"\npassword = \"p\"",
    );
    let found: Vec<String> = errors(&odata).iter().map(|e| e.to_string()).collect();
    assert!(
        found.iter().any(|e| e.contains("pipe.toml:7:")
            && e.contains("password is not a key of an OData connection")),
        "{found:?}"
    );
}

#[test]
fn plain_http_to_another_host_needs_allow_http() {
    let remote = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"http://crm.example.com/api/data/v9.2\"\nauth = \"bearer\"\ntoken = \"t\"",
    );
    let found: Vec<String> = errors(&remote).iter().map(|e| e.to_string()).collect();
    assert!(
        found.iter().any(|e| e.contains("pipe.toml:4:7")
            && e.contains("plain http")
            && e.contains("allow_http = true")),
        "{found:?}"
    );
    let token_url = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"https://crm.example.com/api/data/v9.2\"\nclient_id = \"a\"\nclient_secret = \"s\"\ntoken_url = \"http://login.example.com/t\"",
    );
    let found: Vec<String> = errors(&token_url).iter().map(|e| e.to_string()).collect();
    assert!(
        found
            .iter()
            .any(|e| e.contains("pipe.toml:7:") && e.contains("plain http")),
        "{found:?}"
    );
    // Loopback (the emulator), or written on purpose: accepted.
    for ok in [
        "url = \"http://127.0.0.1:8080/api/data/v9.2\"\nauth = \"none\"",
        "url = \"http://crm.internal/api/data/v9.2\"\nauth = \"bearer\"\ntoken = \"t\"\nallow_http = true",
    ] {
        let text = GOOD.replace("url = \"sqlite://out/warehouse.db\"", ok);
        let text = text.replace("table = \"order_summary\"\n", "table = \"accounts\"\n");
        let parsed = Pipeline::parse(Path::new("/p/pipe.toml"), &text);
        assert!(
            parsed.is_ok(),
            "{ok}: {:?}",
            parsed.err().map(|e| e.to_string())
        );
    }
}

#[test]
fn credentials_or_a_query_in_an_odata_url_are_refused_without_repeating_them() {
    for (url, says) in [
        (
            "https://app:hunter2@crm.example.com/api/data/v9.2",
            "holds credentials",
        ),
        (
            "https://crm.example.com/api/data/v9.2?code=hunter2",
            "has a query",
        ),
    ] {
        let text = GOOD.replace(
            "url = \"sqlite://out/warehouse.db\"",
            &format!("url = \"{url}\"\nauth = \"none\""),
        );
        let found: Vec<String> = errors(&text).iter().map(|e| e.to_string()).collect();
        assert!(
            found
                .iter()
                .any(|e| e.contains("pipe.toml:4:7") && e.contains(says)),
            "{found:?}"
        );
        assert!(found.iter().all(|e| !e.contains("hunter2")), "{found:?}");
    }
    let bare = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"pguser:hunter2@db/shop\"",
    );
    let found: Vec<String> = errors(&bare).iter().map(|e| e.to_string()).collect();
    assert!(found.iter().all(|e| !e.contains("hunter2")), "{found:?}");
}

#[test]
fn only_ferry_variables_expand_outside_credentials() {
    // A pipeline file from someone else must not send $HOME (or a cloud key) to a URL it names.
    let url = GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "url = \"https://crm.example.com/${HOME}/api/data/v9.2\"\nauth = \"none\"",
    );
    let found: Vec<String> = errors(&url).iter().map(|e| e.to_string()).collect();
    assert!(
        found.iter().any(|e| e.contains("pipe.toml:4:7")
            && e.contains("${HOME}")
            && e.contains("only variables named FERRY_")),
        "{found:?}"
    );
    let home = std::env::var("HOME").unwrap_or_default();
    assert!(
        home.is_empty() || found.iter().all(|e| !e.contains(&home)),
        "{found:?}"
    );
    let path = GOOD.replace(
        "path = \"data/orders.parquet\"",
        "path = \"${FERRY_TEST_SURELY_UNSET}/orders.parquet\"",
    );
    let found: Vec<String> = errors(&path).iter().map(|e| e.to_string()).collect();
    assert!(
        found
            .iter()
            .any(|e| e.contains("FERRY_TEST_SURELY_UNSET is not set")),
        "a FERRY_ variable is allowed in a path: {found:?}"
    );
}

#[test]
fn target_keys_of_another_connector_are_errors_at_their_lines() {
    let text = GOOD.replace(
        "key = [\"customer_id\"]\n",
        r#"key = ["customer_id"]
legal_entity = "usmf"
rate_limit = "10/1s"
"#,
    );
    let found: Vec<String> = errors(&text).iter().map(|e| e.to_string()).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    for expected in [
        "/p/pipe.toml:29:1: legal_entity is not a key of a SQLite target",
        "/p/pipe.toml:30:1: rate_limit is not a key of a SQLite target",
    ] {
        assert!(
            found
                .iter()
                .any(|e| e.starts_with(expected) && e.contains("allowed here: atomic")),
            "{expected}: {found:#?}"
        );
    }
    // A SQL target's own key.
    let atomic = GOOD.replace(
        "key = [\"customer_id\"]\n",
        "key = [\"customer_id\"]\natomic = true\n",
    );
    assert!(
        Pipeline::parse(Path::new("/p/pipe.toml"), &atomic).is_ok(),
        "atomic is a key of a SQL target"
    );
}

#[test]
fn a_mode_or_key_the_target_cannot_take_is_an_error_at_its_line() {
    let delta = |mode_and_key: &str| {
        format!(
            r#"name = "to-delta"

[sources.orders]
path = "data/orders.parquet"

[target]
path = "out/orders/"
{mode_and_key}
"#
        )
    };
    let e = one_error(&delta("mode = \"upsert\"\nkey = \"id\""));
    assert!(
        e.starts_with(
            "/p/pipe.toml:8:8: a Delta table target takes mode \"insert\" or \"truncate\", not \"upsert\""
        ),
        "{e}"
    );
    let e = one_error(&delta("mode = \"insert\"\nkey = \"id\""));
    assert!(
        e.starts_with("/p/pipe.toml:9:7: a Delta table target has no keys"),
        "{e}"
    );
    assert!(Pipeline::parse(Path::new("/p/pipe.toml"), &delta("mode = \"insert\"")).is_ok());
    let e = one_error(
        r#"name = "to-json"
[sources.orders]
path = "data/orders.parquet"
[target]
path = "out/orders.json"
mode = "truncate"
"#,
    );
    assert!(
        e.starts_with("/p/pipe.toml:5:8: Ferry does not write json files"),
        "{e}"
    );
}

#[test]
fn a_connection_without_url_or_with_a_key_twice_wrong_is_reported_once_each() {
    let found: Vec<String> = errors(&GOOD.replace(
        "url = \"sqlite://out/warehouse.db\"",
        "uri = \"sqlite://out/warehouse.db\"",
    ))
    .iter()
    .map(|e| e.to_string())
    .collect();
    assert!(
        found
            .iter()
            .any(|e| e.contains("the connection has no url")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .all(|e| !e.contains("there is no connection named")),
        "the target's reference is not a second error: {found:#?}"
    );
}

#[test]
fn a_table_on_a_file_target_is_an_error_at_its_line() {
    let e = one_error(
        r#"name = "f"
[sources.orders]
path = "data/orders.parquet"
[target]
path = "out/orders.parquet"
table = "orders"
mode = "truncate"
"#,
    );
    assert!(
        e.starts_with("/p/pipe.toml:6:9: a file target has no table"),
        "{e}"
    );
}

const WITH_PARAMS: &str = r#"name = "by-region"

[params]
region = "EMEA"
since = 2026-01-01
limit = 10

[connections.shop]
url = "postgres://loader@127.0.0.1/shop"

[sources.orders]
connection = "shop"
query = "SELECT * FROM orders WHERE region = ${params.region} AND day >= ${params.since}"

[[steps]]
name = "recent"
sql = """
SELECT *, ${run.scheduled_time} AS loaded_for
FROM orders -- ${not.filled} in a comment
LIMIT ${params.limit}
"""

[target]
path = "out/recent.parquet"
mode = "truncate"
"#;

#[test]
fn params_fill_sql_as_typed_literals_and_command_line_values_take_the_declared_type() {
    let p = Pipeline::parse(Path::new("/p/pipe.toml"), WITH_PARAMS).unwrap();
    assert_eq!(
        p.placeholder_names(),
        [
            "params.limit",
            "params.region",
            "params.since",
            "run.scheduled_time"
        ]
    );
    let scheduled = chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
        .unwrap()
        .and_hms_opt(2, 0, 0)
        .unwrap();
    let values = p
        .values(
            &["region=O'Brien".into(), "since=2026-06-01".into()],
            scheduled,
            None,
        )
        .unwrap();
    let filled = p.fill(&values).unwrap();
    let Origin::Database {
        read: Read::Query(query),
        ..
    } = &filled.sources[0].origin
    else {
        panic!("a query")
    };
    // PostgreSQL's escape string: the quote doubled, whatever standard_conforming_strings says.
    assert_eq!(
        query,
        "SELECT * FROM orders WHERE region = E'O''Brien' AND day >= DATE '2026-06-01'"
    );
    assert_eq!(
        filled.steps[0].sql,
        "SELECT *, TIMESTAMP '2026-03-01 02:00:00' AS loaded_for\nFROM orders -- ${not.filled} in a comment\nLIMIT 10\n"
    );
    assert_eq!(
        filled.filled,
        [
            ("params.limit".to_string(), "10".to_string()),
            ("params.region".to_string(), "\"O'Brien\"".to_string()),
            ("params.since".to_string(), "DATE '2026-06-01'".to_string()),
            (
                "run.scheduled_time".to_string(),
                "2026-03-01 02:00:00".to_string()
            ),
        ]
    );
    let wrong = p
        .values(&["limit=ten".into()], scheduled, None)
        .unwrap_err();
    assert_eq!(wrong, "--param limit: \"ten\" is not an integer");
    let unknown = p
        .values(&["regoin=APAC".into()], scheduled, None)
        .unwrap_err();
    assert!(unknown.contains("did you mean region?"), "{unknown}");
}

#[test]
fn a_placeholder_in_quotes_or_undeclared_is_an_error_at_its_line() {
    let quoted =
        one_error(&WITH_PARAMS.replace("LIMIT ${params.limit}", "WHERE note = '${params.region}'"));
    assert!(
        quoted.contains("pipe.toml:20")
            && quoted.contains("${params.region} stands inside a quoted string")
            && quoted.contains("write it without quotes"),
        "{quoted}"
    );
    let unknown = one_error(&WITH_PARAMS.replace("${params.since}", "${params.sinse}"));
    assert!(
        unknown.contains("pipe.toml:13")
            && unknown.contains("${params.sinse} is not a parameter")
            && unknown.contains("did you mean ${params.since}?"),
        "{unknown}"
    );
    let builtin = one_error(&WITH_PARAMS.replace("${run.scheduled_time}", "${run.today}"));
    assert!(
        builtin.contains("${run.today} is not a parameter"),
        "{builtin}"
    );
    let array = one_error(&WITH_PARAMS.replace("limit = 10", "limit = [1, 2]"));
    assert!(array.contains("a parameter is one value"), "{array}");
}
