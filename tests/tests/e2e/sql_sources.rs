//! PostgreSQL and MariaDB as sources and as places where steps run, the type matrix in both
//! directions, and connections cut in the middle of a run.

use std::time::Duration;

use ferry::run::Status;
use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, rows, run, sqlite_rows};

/// Every kind of value a source produces, written by a step from a one-row CSV.
const TYPED_STEP: &str = r#"SELECT CAST(7 AS TINYINT) AS i8, CAST(-300 AS SMALLINT) AS i16,
       CAST(70000 AS INT) AS i32, CAST(9000000000 AS BIGINT) AS i64,
       CAST(12345.67 AS DECIMAL(12,2)) AS amount, CAST(1.5 AS FLOAT) AS f32, CAST(2.25 AS DOUBLE) AS f64,
       true AS flag, 'ünïcødé 😀 '' " \ ;' AS txt, CAST(NULL AS VARCHAR) AS nothing,
       DATE '2024-02-29' AS d, CAST('2024-01-02 03:04:05.123456' AS TIMESTAMP) AS ts,
       decode('deadbeef00', 'hex') AS bin
  FROM one"#;

async fn type_matrix_both_directions(server: Server) {
    let db = TestDb::new(server).await;
    let ws = Workspace::new();
    ws.write("in/one.csv", "x\n1\n");
    let write = ws.pipeline(
        "write.toml",
        &format!(
            r#"name = "types-in"
[connections.db]
url = "{}"
[sources.one]
path = "in/one.csv"
[[steps]]
name = "typed"
sql = '''{TYPED_STEP}'''
[target]
connection = "db"
table = "matrix"
mode = "upsert"
key = "i64"
create = true
"#,
            db.url()
        ),
    );
    let report = run(&write).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 1),
        "{report}"
    );
    let (bin, flag) = match server {
        Server::Postgres => ("encode(bin, 'hex')", "flag::text"),
        Server::Mysql => ("lower(hex(bin))", "flag"),
    };
    let stored = db
        .rows(&format!(
            "SELECT i8, i16, i32, i64, amount, f32, f64, {flag}, txt, nothing, d, ts, {bin} FROM matrix"
        ))
        .await;
    let (t, ts) = match server {
        Server::Postgres => ("true", "2024-01-02 03:04:05.123456"),
        Server::Mysql => ("1", "2024-01-02 03:04:05.123456"),
    };
    assert_eq!(
        stored,
        rows(&[&[
            "7",
            "-300",
            "70000",
            "9000000000",
            "12345.67",
            "1.5",
            "2.25",
            t,
            "ünïcødé 😀 ' \" \\ ;",
            "NULL",
            "2024-02-29",
            ts,
            "deadbeef00"
        ]])
    );

    // And back: the table as a source, written to parquet, holds the same values.
    let read = ws.pipeline(
        "read.toml",
        &format!(
            r#"name = "types-out"
[connections.db]
url = "{}"
[sources.matrix]
connection = "db"
table = "matrix"
[target]
path = "out/matrix.parquet"
mode = "truncate"
"#,
            db.url()
        ),
    );
    let report = run(&read).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 1),
        "{report}"
    );
    let back = ferry_tests::datafusion_rows(
        &[("m", &ws.join("out/matrix.parquet"))],
        "SELECT i8, i16, i32, i64, amount, f32, f64, CAST(flag AS VARCHAR), txt, nothing, d, ts, encode(CAST(bin AS BYTEA), 'hex') FROM m",
    )
    .await;
    assert_eq!(
        back,
        rows(&[&[
            "7",
            "-300",
            "70000",
            "9000000000",
            "12345.67",
            "1.5",
            "2.25",
            t,
            "ünïcødé 😀 ' \" \\ ;",
            "NULL",
            "2024-02-29",
            "2024-01-02T03:04:05.123456",
            "deadbeef00"
        ]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_type_matrix_both_directions() {
    type_matrix_both_directions(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_type_matrix_both_directions() {
    type_matrix_both_directions(Server::Mysql).await;
}

/// PostgreSQL's own types, filled from Arrow values of other types (text into uuid and jsonb, a
/// timestamp into timestamptz, integers into numeric).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_specific_types_are_filled_exactly() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec(
        "CREATE TABLE p (id integer PRIMARY KEY, u uuid, j jsonb, js json, tz timestamptz, n numeric(30,10), \
         r real, c char(3), big numeric)",
    )
    .await;
    let ws = Workspace::new();
    ws.write(
        "in/src.csv",
        "id,u,j,tz,n,r,c,big\n1,6f1c2a6e-4a43-4c55-9a55-0d5c7a1e2b3c,\"{\"\"a\"\": [1, 2]}\",2024-05-06T07:08:09Z,-0.0000000001,0.25,abc,123456789012345678901234567890\n",
    );
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "pg-types"
[connections.db]
url = "{}"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "r"
sql = "SELECT id, u, j, j AS js, CAST(tz AS TIMESTAMP) AS tz, n, r, c, CAST(big AS VARCHAR) AS big FROM src"
[target]
connection = "db"
table = "p"
mode = "upsert"
key = "id"
"#,
            db.url()
        ),
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    assert_eq!(
        db.rows("SET TIME ZONE 'UTC'; SELECT u::text, j::text, js::text, tz::text, n::text, r::text, c, big::text FROM p").await,
        rows(&[&[
            "6f1c2a6e-4a43-4c55-9a55-0d5c7a1e2b3c",
            "{\"a\": [1, 2]}",
            "{\"a\": [1, 2]}",
            "2024-05-06 07:08:09+00",
            "-0.0000000001",
            "0.25",
            "abc",
            "123456789012345678901234567890"
        ]])
    );
}

/// The multi-database order summary: orders in PostgreSQL (summed there, in its own SQL), customers
/// in MariaDB, regions in a CSV file, joined in one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pipeline_joins_postgres_mysql_and_a_file() {
    let pg = TestDb::new(Server::Postgres).await;
    let my = TestDb::new(Server::Mysql).await;
    pg.exec(
        "CREATE SCHEMA sales; CREATE TABLE sales.orders (order_id bigint PRIMARY KEY, customer_id int, amount numeric(12,2), ordered date);
         INSERT INTO sales.orders VALUES (1, 10, 5.50, '2024-01-01'), (2, 10, 4.50, '2024-01-02'), (3, 11, 100.00, '2024-01-03'), (4, 12, 1.25, '2024-01-04')",
    )
    .await;
    my.exec(
        "CREATE TABLE customers (customer_id INT PRIMARY KEY, name VARCHAR(50), region CHAR(2))",
    )
    .await;
    my.exec(
        "INSERT INTO customers VALUES (10, 'Ada', 'EU'), (11, 'Grace', 'US'), (12, 'Linus', 'EU')",
    )
    .await;
    let ws = Workspace::new();
    ws.write(
        "in/regions.csv",
        "code,region_name\nEU,Europe\nUS,United States\n",
    );
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "order-summary"
[connections.pg]
url = "{}"
[connections.my]
url = "{}"
[connections.out]
url = "sqlite://out.db"
[sources.customers]
connection = "my"
table = "customers"
[sources.regions]
path = "in/regions.csv"
[[steps]]
name = "totals"
connection = "pg"
sql = "SELECT customer_id, SUM(amount)::numeric(12,2) AS total, COUNT(*)::int AS orders FROM sales.orders GROUP BY customer_id"
[[steps]]
name = "summary"
sql = """SELECT r.region_name, COUNT(*) AS customers, SUM(t.orders) AS orders, SUM(t.total) AS total
           FROM @result1 t JOIN customers c ON c.customer_id = t.customer_id
           JOIN regions r ON r.code = c.region
          GROUP BY r.region_name"""
[target]
connection = "out"
table = "summary"
mode = "truncate"
create = true
"#,
            pg.url(),
            my.url()
        ),
    );
    let report = run(&pipeline).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 2),
        "{report}"
    );
    assert_eq!(
        sqlite_rows(
            &ws.join("out.db"),
            "SELECT region_name, customers, orders, total FROM summary"
        ),
        rows(&[
            &["Europe", "2", "3", "11.25"],
            &["United States", "1", "1", "100"]
        ])
    );
}

async fn partitioned_read_returns_every_row_once(server: Server) {
    let db = TestDb::new(server).await;
    db.exec("CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(20))")
        .await;
    let values: Vec<String> = (1..=3000).map(|i| format!("({i}, 'v{i}')")).collect();
    db.exec(&format!("INSERT INTO big VALUES {}", values.join(",")))
        .await;
    db.exec("INSERT INTO big VALUES (-5, NULL)").await;
    db.exec("CREATE TABLE days (d DATE, n INT)").await;
    db.exec("INSERT INTO days VALUES ('2024-01-01', 1), ('2024-01-02', 2), ('2024-03-01', 3), ('2025-12-31', 4), (NULL, 5)").await;
    let ws = Workspace::new();
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "read"
[connections.db]
url = "{}"
[sources.big]
connection = "db"
table = "big"
partitions = 3
partition_column = "id"
[[steps]]
name = "r"
sql = "SELECT id, v FROM big WHERE id <> 17"
[target]
path = "out/big.parquet"
mode = "truncate"
"#,
            db.url()
        ),
    );
    let report = run(&pipeline).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 3000),
        "{report}"
    );
    let summary = ferry_tests::datafusion_rows(
        &[("b", &ws.join("out/big.parquet"))],
        "SELECT count(*), count(DISTINCT id), sum(id), min(id), max(id) FROM b",
    )
    .await;
    assert_eq!(
        summary,
        rows(&[&[
            "3000",
            "3000",
            &(4501500 - 17 - 5).to_string(),
            "-5",
            "3000"
        ]])
    );

    // A date column splits by days; NULLs go with the first range.
    let by_day = ws.pipeline(
        "days.toml",
        &format!(
            r#"name = "days"
[connections.db]
url = "{}"
[sources.days]
connection = "db"
table = "days"
partitions = 4
partition_column = "d"
[target]
path = "out/days.parquet"
mode = "truncate"
"#,
            db.url()
        ),
    );
    let report = run(&by_day).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 5),
        "{report}"
    );
    assert_eq!(
        ferry_tests::datafusion_rows(&[("d", &ws.join("out/days.parquet"))], "SELECT n FROM d")
            .await,
        rows(&[&["1"], &["2"], &["3"], &["4"], &["5"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_partitioned_read_returns_every_row_once() {
    partitioned_read_returns_every_row_once(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_partitioned_read_returns_every_row_once() {
    partitioned_read_returns_every_row_once(Server::Mysql).await;
}

/// A partitioned PostgreSQL read sees the table as it was when the read began, on every one of its
/// connections: rows deleted, changed or added while its ranges start are read as they were, and
/// the count check holds on a table that is in use (a sync of a live table deletes nothing it has).
/// Over ranges of blocks an update moves a row to another block: without one snapshot it would be
/// read twice.
async fn a_partitioned_read_sees_one_snapshot_on_every_connection(partition_column: &str) {
    use datafusion::physical_plan::execute_stream_partitioned;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use ferry_connectors::sql::source::{Server as Db, ServerReader};
    use ferry_connectors::{Read, Reader};
    use futures::StreamExt;

    let db = TestDb::new(Server::Postgres).await;
    db.exec("CREATE TABLE live (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
        .await;
    db.exec("INSERT INTO live SELECT i, i FROM generate_series(1, 4000) i")
        .await;
    let reader = ServerReader {
        server: Db::Postgres,
        db: ferry_connectors::sql::db::DbConfig::parse(&db.url(), std::path::Path::new("."))
            .unwrap(),
    };
    // One partition per range, as planned: the ranges start one after another here.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let read = Read::Table {
        name: "live".into(),
        partitions: Some((4, partition_column.into())),
    };
    reader.register(&ctx, "live", &read).await.unwrap();
    let plan = ctx
        .sql("SELECT id, v FROM live")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut ranges = execute_stream_partitioned(plan, ctx.task_ctx()).unwrap();
    assert_eq!(ranges.len(), 4, "one stream per range");
    let mut batches = vec![ranges[0].next().await.unwrap().unwrap()];
    // The first range is reading; the others have not begun when the table changes.
    db.exec("DELETE FROM live WHERE id > 3000").await;
    db.exec("UPDATE live SET v = -v WHERE id <= 2000").await;
    db.exec("INSERT INTO live SELECT i, i FROM generate_series(5001, 5500) i")
        .await;
    for range in ranges.iter_mut() {
        while let Some(batch) = range.next().await {
            batches.push(batch.unwrap_or_else(|e| panic!("the read failed: {e}")));
        }
    }
    // Every row once, with the value it had when the read began (ids 1..=4000, v = id).
    let mut as_it_was: Vec<Vec<String>> = (1..=4000).map(|i| vec![i.to_string(); 2]).collect();
    as_it_was.sort();
    assert_eq!(
        ferry_tests::batch_rows(&batches),
        as_it_was,
        "the read is the table as it was when it began"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_partitioned_read_by_key_sees_one_snapshot() {
    a_partitioned_read_sees_one_snapshot_on_every_connection("id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_partitioned_read_by_blocks_sees_one_snapshot() {
    a_partitioned_read_sees_one_snapshot_on_every_connection("ctid").await;
}

/// A server that exports no snapshot (here: a user who may not call `pg_export_snapshot`, as on
/// some PostgreSQL-compatible services) is read as before, each range at its own start; ranges of
/// blocks need the snapshot and are refused, saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_snapshots_ranges_of_a_key_still_read_and_blocks_are_refused() {
    let db = TestDb::new(Server::Postgres).await;
    let user = format!("ferry_nosnap_{}", &db.name[8..]);
    db.exec(&format!(
        "CREATE TABLE live (id BIGINT PRIMARY KEY, v BIGINT NOT NULL); \
         INSERT INTO live SELECT i, i FROM generate_series(1, 3000) i; \
         CREATE ROLE {user} LOGIN; GRANT SELECT ON live TO {user}; \
         REVOKE EXECUTE ON FUNCTION pg_export_snapshot() FROM PUBLIC"
    ))
    .await;
    let url = db.url().replace("postgres@", &format!("{user}@"));
    let ws = Workspace::new();
    let toml = |column: &str| {
        format!(
            r#"name = "nosnap"
[connections.db]
url = "{url}"
[sources.live]
connection = "db"
table = "live"
partitions = 3
partition_column = "{column}"
[target]
path = "out/live.parquet"
mode = "truncate"
"#
        )
    };
    let report = run(&ws.pipeline("id.toml", &toml("id"))).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 3000),
        "{report}"
    );
    assert_eq!(
        ferry_tests::datafusion_rows(
            &[("l", &ws.join("out/live.parquet"))],
            "SELECT id, v FROM l"
        )
        .await,
        {
            let mut every: Vec<Vec<String>> = (1..=3000).map(|i| vec![i.to_string(); 2]).collect();
            every.sort();
            every
        }
    );
    let by_blocks = ws.write("ctid.toml", toml("ctid"));
    let (code, out) = ferry_tests::ferry_output(&["run", by_blocks.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("partition_column = \"ctid\"")
            && out.contains("this server exports none")
            && out.contains("partition over an integer or date column"),
        "{out}"
    );
}

/// A partitioned source whose table does not exist says so, with what to check, as a whole read
/// does (the bounds are read first; their error would name only the database's words).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_partitioned_read_of_a_missing_table_names_it() {
    let db = TestDb::new(Server::Postgres).await;
    let ws = Workspace::new();
    let file = ws.write(
        "p.toml",
        format!(
            "name = \"missing\"\n[connections.db]\nurl = \"{}\"\n[sources.s]\nconnection = \"db\"\n\
             table = \"sales.nosuch\"\npartitions = 2\npartition_column = \"id\"\n\
             [target]\npath = \"out/s.parquet\"\nmode = \"truncate\"\n",
            db.url()
        ),
    );
    let (code, out) = ferry_tests::ferry_output(&["run", file.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("cannot read table sales.nosuch")
            && out.contains("check the table name (schema.table)"),
        "{out}"
    );
}

/// A table keyed by uuids has no integer or date column to split: `partition_column = "ctid"`
/// reads it in ranges of its blocks, every row once, with the count check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_table_without_a_numeric_key_is_read_in_ranges_of_blocks() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec("CREATE TABLE people (id uuid PRIMARY KEY, n INT NOT NULL, name TEXT)")
        .await;
    db.exec(
        "INSERT INTO people SELECT md5(i::text)::uuid, i, repeat('x', i % 50) \
         FROM generate_series(1, 5000) i",
    )
    .await;
    // Dead row versions and free space in the first blocks, as a table in use has.
    db.exec("DELETE FROM people WHERE n % 7 = 0").await;
    db.exec("UPDATE people SET name = 'moved' WHERE n % 11 = 0")
        .await;
    let ws = Workspace::new();
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "blocks"
[connections.db]
url = "{}"
[sources.people]
connection = "db"
table = "people"
partitions = 4
partition_column = "ctid"
[target]
path = "out/people.parquet"
mode = "truncate"
"#,
            db.url()
        ),
    );
    let report = run(&pipeline).await;
    let kept = (1..=5000).filter(|n| n % 7 != 0).count();
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, kept as u64),
        "{report}"
    );
    // Every row left, once, as it is now (the moved ones renamed).
    let mut now: Vec<Vec<String>> = (1..=5000)
        .filter(|n| n % 7 != 0)
        .map(|n| {
            let name = match n % 11 {
                0 => "moved".to_string(),
                _ => "x".repeat(n % 50),
            };
            vec![n.to_string(), name]
        })
        .collect();
    now.sort();
    let read = ferry_tests::datafusion_rows(
        &[("p", &ws.join("out/people.parquet"))],
        "SELECT n, name FROM p",
    )
    .await;
    assert!(
        read == now,
        "{} rows read, {} expected",
        read.len(),
        now.len()
    );
    assert_eq!(
        ferry_tests::datafusion_rows(
            &[("p", &ws.join("out/people.parquet"))],
            "SELECT count(DISTINCT id) FROM p"
        )
        .await,
        rows(&[&[&kept.to_string()]])
    );
}

/// What a server restart looks like to a client, done to the run's connections again and again:
/// the run retries, and every row lands exactly once.
async fn cut_connections_lose_and_double_nothing(server: Server) {
    let db = TestDb::new(server).await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, score BIGINT NOT NULL)")
        .await;
    let ws = Workspace::new();
    let mut csv = String::from("id,score\n");
    for i in 1..=40_000 {
        csv.push_str(&format!("{i},{}\n", i * 3));
    }
    ws.write("in/src.csv", &csv);
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "cuts"
[connections.db]
url = "{}"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "t"
mode = "upsert"
key = "id"
batch_size = 500
workers = 2
[run]
max_retries = 20
"#,
            db.url()
        ),
    );
    let name = db.name.clone();
    let killer = tokio::spawn(async move {
        let mut kills = 0;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            let killed = match server {
                Server::Postgres => ferry_tests::db::pg_kill_connections(&name).await,
                Server::Mysql => ferry_tests::db::my_kill_connections(&name).await,
            };
            kills += killed;
            if kills >= 6 {
                break;
            }
        }
        kills
    });
    let report = run(&pipeline).await;
    let kills = killer.await.unwrap();
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 40_000),
        "{report}"
    );
    assert!(kills > 0, "no connection was cut: the test proved nothing");
    assert_eq!(
        db.rows("SELECT count(*), count(DISTINCT id), sum(score) FROM t")
            .await,
        rows(&[&["40000", "40000", &(3u64 * 40_000 * 40_001 / 2).to_string()]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_connections_lose_and_double_nothing() {
    cut_connections_lose_and_double_nothing(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_cut_connections_lose_and_double_nothing() {
    cut_connections_lose_and_double_nothing(Server::Mysql).await;
}

/// `ferry validate` names each privilege the connected user lacks for the mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_missing_privileges() {
    let pg = TestDb::new(Server::Postgres).await;
    let my = TestDb::new(Server::Mysql).await;
    let user = format!("ferry_ro_{}", &pg.name[8..]);
    pg.exec(&format!(
        "CREATE TABLE t (id bigint PRIMARY KEY, name text); CREATE ROLE {user} LOGIN; GRANT SELECT, INSERT ON t TO {user}; REVOKE CREATE ON SCHEMA public FROM PUBLIC"
    ))
    .await;
    my.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)")
        .await;
    ferry_tests::db::my_admin(&format!("CREATE USER '{user}'@'%'")).await;
    ferry_tests::db::my_admin(&format!(
        "GRANT SELECT, INSERT ON {}.t TO '{user}'@'%'",
        my.name
    ))
    .await;
    let ws = Workspace::new();
    ws.write("in/src.csv", "id,name\n1,a\n");
    for (url, server) in [
        (
            pg.url().replace("postgres@", &format!("{user}@")),
            "postgres",
        ),
        (my.url().replace("root@", &format!("{user}@")), "mysql"),
    ] {
        let pipeline = ws.pipeline(
            &format!("{server}.toml"),
            &format!(
                r#"name = "v"
[connections.db]
url = "{url}"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "t"
mode = "sync"
key = "id"
"#
            ),
        );
        let checked = ferry::run::validate::check(&pipeline).await.unwrap();
        let text = checked
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        for privilege in ["UPDATE", "DELETE", "CREATE"] {
            assert!(
                text.contains(&format!("lacks the {privilege} privilege")),
                "{server}: {text}"
            );
            assert!(
                text.contains(&format!("GRANT {privilege}")),
                "{server}: {text}"
            );
        }
        assert!(!text.contains("lacks the INSERT"), "{server}: {text}");
    }
    ferry_tests::db::my_admin(&format!("DROP USER '{user}'@'%'")).await;
    drop(pg);
    ferry_tests::db::pg_admin(&format!("DROP ROLE IF EXISTS {user}")).await;
}

/// TLS as PostgreSQL means it, with certificates checked whenever TLS is used. The test server
/// presents a self-signed certificate issued to `localhost` (servers.rs makes it with openssl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls_checks_certificates() {
    use ferry_connectors::sql::db::DbConfig;
    use ferry_connectors::sql::postgres::client::connect;
    let db = TestDb::new(Server::Postgres).await;
    let server = Server::Postgres.info();
    let ca = server.tls_ca.as_ref().expect(
        "the test PostgreSQL has no TLS certificate: install openssl (or, with FERRY_TEST_PG, name the server's CA in FERRY_TEST_PG_CA)",
    );
    let ca = ca.display().to_string();
    let port = server.port;
    let config = |host: &str, query: &str| {
        DbConfig::parse(
            &format!("postgres://postgres@{host}:{port}/{}?{query}", db.name),
            std::path::Path::new("/"),
        )
        .unwrap()
    };
    let uses_tls = async |c: &DbConfig| -> Result<bool, String> {
        let client = connect(c).await.map_err(|e| e.to_string())?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    };
    // The certificate chains to the given root and names the host: connected, encrypted.
    assert_eq!(
        uses_tls(&config(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    // verify-ca checks the chain but not the name, so 127.0.0.1 is accepted...
    assert_eq!(
        uses_tls(&config(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    // ...and verify-full is not: the certificate names localhost.
    let wrong_name = uses_tls(&config(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await;
    assert!(wrong_name.is_err(), "{wrong_name:?}");
    // require checks the certificate too (libpq's would not): with the root given, localhost
    // passes; without it, a certificate the system does not trust is refused, with a hint.
    assert_eq!(
        uses_tls(&config(
            "localhost",
            &format!("sslmode=require&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    let untrusted = uses_tls(&config("127.0.0.1", "sslmode=require"))
        .await
        .unwrap_err();
    assert!(untrusted.contains("sslrootcert"), "{untrusted}");
    // Loopback without sslmode: plain text.
    assert_eq!(uses_tls(&config("127.0.0.1", "")).await, Ok(false));
}
