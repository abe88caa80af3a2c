//! Every value arrives as it left: edge values of each database's own types, read from a `table`
//! source and written to parquet, compared value by value with what the database holds; and values
//! a type cannot hold, refused with their column named.

use ferry::run::Status;
use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, datafusion_exact, rows, run};

/// Runs a pipeline reading `source` (a `[sources.src]` body) of `db` into `out/t.parquet` of `ws`.
async fn read_into_parquet(ws: &Workspace, db: &TestDb, source: &str) -> ferry::run::RunReport {
    let pipeline = ws.pipeline(
        "read.toml",
        &format!(
            r#"name = "types"
[connections.db]
url = "{}"
[sources.src]
connection = "db"
{source}
[target]
path = "out/t.parquet"
mode = "truncate"
"#,
            db.url()
        ),
    );
    run(&pipeline).await
}

/// Reads `table` of `db` into a parquet file, and answers `sql` over it (as table `t`).
async fn through_parquet(db: &TestDb, table: &str, sql: &str) -> Vec<Vec<String>> {
    let ws = Workspace::new();
    let report = read_into_parquet(&ws, db, &format!("table = \"{table}\"")).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    datafusion_exact(&[("t", &ws.join("out/t.parquet"))], sql).await
}

/// A failed read of `table` (or of `query`), and its error.
async fn read_error(db: &TestDb, source: &str) -> String {
    let report = read_into_parquet(&Workspace::new(), db, source).await;
    assert_eq!(report.status, Status::Failed, "{report}");
    assert_eq!(report.rows_written, 0, "{report}");
    report.error.expect("a failed run says why")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_edge_values_arrive_exactly() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec(
        "CREATE TABLE edge (id int PRIMARY KEY, ts timestamp, tstz timestamptz, d date, t time, \
           n numeric(38,10), money12 numeric(12,2), free numeric, wide numeric(50,5), j jsonb, js json, \
           u uuid, b bytea, i2 smallint, i8 bigint, f float8, r real, txt text, ch char(3), arr int[], \
           flag boolean);
         INSERT INTO edge VALUES
         (1, '1969-12-31 23:59:59.999999', '1900-01-01 00:00:00+00', '0001-01-01', '23:59:59.999999',
          '9999999999999999999999999999.9999999999', -9999999999.99, 123.45,
          '123456789012345678901234567890123456789012345.12345', '{\"a\": [1, {\"b\": null}], \"z\": \"é\"}',
          '[1, \"two\"]', '6f1c2a6e-4a43-4c55-9a55-0d5c7a1e2b3c', '\\x00ff10', -32768,
          -9223372036854775808, 5e-324, 3.4e38, 'emoji 😀 and ''quotes''', 'ab', '{1,2,3}', true),
         (2, '0001-01-01 00:00:00', '2262-04-12 00:00:00.000001+00', '9999-12-31', '00:00:00',
          '-0.0000000001', 0, -0.0000000001, '-1.5', '3', '\"scalar\"', NULL, '', 32767,
          9223372036854775807, 'Infinity', '-Infinity', '', 'xyz', '{}', false),
         (3, '1960-01-01 12:00:00', NULL, '1969-12-31', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    let got = through_parquet(
        &db,
        "edge",
        "SELECT id, CAST(ts AS VARCHAR), CAST(tstz AS VARCHAR), CAST(d AS VARCHAR), CAST(t AS VARCHAR), \
                CAST(n AS VARCHAR), CAST(money12 AS VARCHAR), CAST(free AS VARCHAR), wide, j, js, u, \
                encode(b, 'hex'), i2, i8, CAST(f AS VARCHAR), CAST(r AS VARCHAR), txt, ch, arr, flag \
           FROM t ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &[
                "1",
                "1969-12-31T23:59:59.999999",
                "1900-01-01T00:00:00Z",
                "0001-01-01",
                "23:59:59.999999",
                "9999999999999999999999999999.9999999999",
                "-9999999999.99",
                "123.4500000000",
                "123456789012345678901234567890123456789012345.12345",
                "{\"a\": [1, {\"b\": null}], \"z\": \"é\"}",
                "[1, \"two\"]",
                "6f1c2a6e-4a43-4c55-9a55-0d5c7a1e2b3c",
                "00ff10",
                "-32768",
                "-9223372036854775808",
                "5e-324",
                "3.4e38",
                "emoji 😀 and 'quotes'",
                "ab ",
                "{1,2,3}",
                "true"
            ],
            &[
                "2",
                "0001-01-01T00:00:00",
                "2262-04-12T00:00:00.000001Z",
                "9999-12-31",
                "00:00:00",
                "-0.0000000001",
                "0.00",
                "-0.0000000001",
                "-1.50000",
                "3",
                "\"scalar\"",
                "NULL",
                "",
                "32767",
                "9223372036854775807",
                "inf",
                "-inf",
                "",
                "xyz",
                "{}",
                "false"
            ],
            &[
                "3",
                "1960-01-01T12:00:00",
                "NULL",
                "1969-12-31",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NaN",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL"
            ],
        ])
    );
    // The parquet columns carry the declared types, not a bent one.
    let types = through_parquet(
        &db,
        "edge",
        "SELECT arrow_typeof(ts), arrow_typeof(tstz), arrow_typeof(n), arrow_typeof(money12), \
                arrow_typeof(free), arrow_typeof(wide), arrow_typeof(j) FROM t LIMIT 1",
    )
    .await;
    assert_eq!(
        types,
        rows(&[&[
            "Timestamp(µs)",
            "Timestamp(µs, \"UTC\")",
            "Decimal128(38, 10)",
            "Decimal128(12, 2)",
            "Decimal128(38, 10)",
            // Text (DataFusion reads parquet strings as views).
            "Utf8View",
            "Utf8View"
        ]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_values_a_type_cannot_hold_stop_the_read_naming_the_column() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec(
        "CREATE TABLE free (id int, amount numeric); INSERT INTO free VALUES (1, 1.5), (2, 1.00000000001);
         CREATE TABLE forever (id int, until timestamp); INSERT INTO forever VALUES (1, 'infinity')",
    )
    .await;
    let e = read_error(&db, "table = \"free\"").await;
    assert!(
        e.contains("column \"amount\" holds 1.00000000001, which does not fit decimal(38,10)"),
        "{e}"
    );
    assert!(e.contains("numeric(p,s)"), "{e}");
    let e = read_error(&db, "table = \"forever\"").await;
    assert!(
        e.contains("column \"until\" holds an infinite timestamp"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_without_rows_still_has_its_columns() {
    for server in [Server::Postgres, Server::Mysql] {
        let db = TestDb::new(server).await;
        db.exec("CREATE TABLE e (id int, name varchar(20))").await;
        let ws = Workspace::new();
        let pipeline = ws.pipeline(
            "read.toml",
            &format!(
                r#"name = "empty"
[connections.db]
url = "{}"
[sources.src]
connection = "db"
query = "SELECT id, name FROM e WHERE id > 5"
[target]
path = "out/t.parquet"
mode = "truncate"
"#,
                db.url()
            ),
        );
        let report = run(&pipeline).await;
        assert_eq!(
            (report.status, report.rows_written),
            (Status::Completed, 0),
            "{server:?}: {report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_edge_values_arrive_exactly() {
    let db = TestDb::new(Server::Mysql).await;
    db.exec(
        "CREATE TABLE edge (id INT PRIMARY KEY, dt DATETIME(6), ts TIMESTAMP(6) NULL, d DATE, t TIME(6), \
           y YEAR, dec65 DECIMAL(65,30), dec12 DECIMAL(12,2), ub BIGINT UNSIGNED, ti TINYINT, \
           f DOUBLE, r FLOAT, bits BIT(12), e ENUM('small','large'), j JSON, txt TEXT, bin VARBINARY(8))",
    )
    .await;
    db.exec(
        "INSERT INTO edge VALUES
         (1, '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '1000-01-01', '23:59:59.999999', 1901,
          '-99999999999999999999999999999999999.999999999999999999999999999999', -9999999999.99,
          18446744073709551615, -128, 5e-324, 1.5, b'101010101010', 'large', '{\"a\": [1, null]}',
          'emoji 😀', X'00FF10'),
         (2, '1969-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '9999-12-31', '00:00:00', 2155,
          0, 0, 0, 127, -1.7976931348623157e308, -3.5, b'0', 'small', '3', '', X''),
         (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    let got = through_parquet(
        &db,
        "edge",
        "SELECT id, CAST(dt AS VARCHAR), CAST(ts AS VARCHAR), CAST(d AS VARCHAR), CAST(t AS VARCHAR), y, \
                CAST(dec65 AS VARCHAR), CAST(dec12 AS VARCHAR), ub, ti, CAST(f AS VARCHAR), \
                CAST(r AS VARCHAR), bits, e, j, txt, encode(bin, 'hex') FROM t ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &[
                "1",
                "1000-01-01T00:00:00.000001",
                "1970-01-01T00:00:01Z",
                "1000-01-01",
                "23:59:59.999999",
                "1901",
                "-99999999999999999999999999999999999.999999999999999999999999999999",
                "-9999999999.99",
                "18446744073709551615",
                "-128",
                "5e-324",
                "1.5",
                "2730",
                "large",
                "{\"a\": [1, null]}",
                "emoji 😀",
                "00ff10"
            ],
            &[
                "2",
                "1969-12-31T23:59:59.999999",
                "2038-01-19T03:14:07.999999Z",
                "9999-12-31",
                "00:00:00",
                "2155",
                "0.000000000000000000000000000000",
                "0.00",
                "0",
                "127",
                "-1.7976931348623157e308",
                "-3.5",
                "0",
                "small",
                "3",
                "",
                ""
            ],
            &[
                "3", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL",
                "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"
            ],
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_durations_in_a_time_column_stop_the_read_naming_the_column() {
    let db = TestDb::new(Server::Mysql).await;
    db.exec("CREATE TABLE spans (id INT, took TIME)").await;
    db.exec("INSERT INTO spans VALUES (1, '01:00:00'), (2, '-12:30:00')")
        .await;
    let e = read_error(&db, "table = \"spans\"").await;
    assert!(
        e.contains("column \"took\" holds '-12:30:00', which is a duration, not a time of day"),
        "{e}"
    );
    assert!(e.contains("TIME_TO_SEC(col)"), "{e}");
}

/// Copies table `src` of `from` into a table `copy` that `create = true` makes in `to`; returns
/// what `ferry validate` said first (the CREATE TABLE it would run).
async fn create_copy(from: &TestDb, to: &TestDb) -> String {
    let ws = Workspace::new();
    let pipeline = ws.pipeline(
        "copy.toml",
        &format!(
            r#"name = "mirror"
[connections.from]
url = "{}"
[connections.to]
url = "{}"
[sources.src]
connection = "from"
table = "src"
[target]
connection = "to"
table = "copy"
mode = "insert"
create = true
"#,
            from.url(),
            to.url()
        ),
    );
    let validated = ferry_tests::ferry_command()
        .arg("validate")
        .arg(ws.join("copy.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&validated.stdout).into_owned();
    assert!(
        validated.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&validated.stderr)
    );
    let report = run(&pipeline).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 1),
        "{report}"
    );
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_tables_carry_the_sources_declared_types() {
    let pg = TestDb::new(Server::Postgres).await;
    pg.exec(
        "CREATE TABLE src (amount numeric(12,2), code varchar(40), cur char(3), id uuid, doc jsonb, \
           raw json, at timestamptz, born timestamp, n bigint);
         INSERT INTO src VALUES (12.50, 'A-1', 'EUR', '6f1c2a6e-4a43-4c55-9a55-0d5c7a1e2b3c', \
           '{\"k\": 1}', '{ \"k\" :  1 }', '1950-06-01 12:00:00+00', '1950-06-01 12:00:00', 1)",
    )
    .await;

    let my = TestDb::new(Server::Mysql).await;
    let validated = create_copy(&pg, &my).await;
    assert!(
        validated.contains(
            "CREATE TABLE `copy` (`amount` DECIMAL(12,2) NULL, `code` VARCHAR(40) NULL, `cur` CHAR(3) NULL, `id` CHAR(36) NULL"
        ),
        "{validated}"
    );
    let columns = my
        .rows(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'copy' ORDER BY ORDINAL_POSITION",
        )
        .await;
    // MariaDB's JSON is LONGTEXT with a JSON_VALID check.
    assert_eq!(
        columns,
        rows(&[
            &["amount", "decimal(12,2)"],
            &["code", "varchar(40)"],
            &["cur", "char(3)"],
            &["id", "char(36)"],
            &["doc", "longtext"],
            &["raw", "longtext"],
            &["at", "datetime(6)"],
            &["born", "datetime(6)"],
            &["n", "bigint(20)"],
        ])
    );
    assert_eq!(
        my.rows("SELECT amount, code, cur, id, JSON_VALID(doc), at, born FROM copy")
            .await,
        rows(&[&[
            "12.50",
            "A-1",
            "EUR",
            "6f1c2a6e-4a43-4c55-9a55-0d5c7a1e2b3c",
            "1",
            "1950-06-01 12:00:00.000000",
            "1950-06-01 12:00:00.000000"
        ]])
    );

    let pg_copy = TestDb::new(Server::Postgres).await;
    let validated = create_copy(&pg, &pg_copy).await;
    assert!(
        validated.contains("\"doc\" jsonb, \"raw\" json, \"at\" timestamptz"),
        "{validated}"
    );
    let columns = pg_copy
        .rows(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'copy'::regclass AND attnum > 0 ORDER BY attnum",
        )
        .await;
    assert_eq!(
        columns,
        rows(&[
            &["amount", "numeric(12,2)"],
            &["code", "character varying(40)"],
            &["cur", "character(3)"],
            &["id", "uuid"],
            &["doc", "jsonb"],
            &["raw", "json"],
            &["at", "timestamp with time zone"],
            &["born", "timestamp without time zone"],
            &["n", "bigint"],
        ])
    );
    assert_eq!(
        pg_copy
            .rows("SET TIME ZONE 'UTC'; SELECT amount::text, code, cur, id::text, doc::text, raw::text, at::text, born::text FROM copy")
            .await,
        rows(&[&[
            "12.50",
            "A-1",
            "EUR",
            "6f1c2a6e-4a43-4c55-9a55-0d5c7a1e2b3c",
            "{\"k\": 1}",
            "{ \"k\" :  1 }",
            "1950-06-01 12:00:00+00",
            "1950-06-01 12:00:00"
        ]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_reads_rows_without_columns() {
    for server in [Server::Postgres, Server::Mysql] {
        let db = TestDb::new(server).await;
        db.exec("CREATE TABLE c (id int, name varchar(20))").await;
        db.exec("INSERT INTO c VALUES (1, 'a'), (2, NULL), (3, 'c')")
            .await;
        let ws = Workspace::new();
        let pipeline = ws.pipeline(
            "count.toml",
            &format!(
                r#"name = "count"
[connections.db]
url = "{}"
[sources.c]
connection = "db"
table = "c"
[[steps]]
name = "n"
sql = "SELECT count(*) AS all_rows, count(name) AS named, max(id) AS top FROM c WHERE id >= 2"
[target]
path = "out/n.parquet"
mode = "truncate"
"#,
                db.url()
            ),
        );
        let report = run(&pipeline).await;
        assert_eq!(report.status, Status::Completed, "{server:?}: {report}");
        let got = datafusion_exact(
            &[("t", &ws.join("out/n.parquet"))],
            "SELECT CAST(all_rows AS VARCHAR), CAST(named AS VARCHAR), CAST(top AS VARCHAR) FROM t",
        )
        .await;
        assert_eq!(got, rows(&[&["2", "1", "3"]]), "{server:?}");
    }
}
