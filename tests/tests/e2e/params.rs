//! `[params]`, `--param` and `${run.*}`: one pipeline over many date ranges and tenants. Values reach
//! the database as typed literals: a value written to break out of its quotes arrives as the text it
//! is, on PostgreSQL and on MariaDB, and `${run.last_success_time}` makes the next run read only
//! what changed since the last one that succeeded.

use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, rows, sqlite_rows};

use ferry_tests::ferry_output as ferry;

const HOSTILE: &str = "x'; DROP TABLE people; -- \\";

async fn hostile_values_arrive_as_text(server: Server) {
    let db = TestDb::new(server).await;
    db.exec("CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(60), region VARCHAR(10), joined DATE)")
        .await;
    db.exec(&format!(
        "INSERT INTO people VALUES (1, 'a', 'EMEA', '2026-01-05'), (2, 'b', 'EMEA', '2026-06-05'), \
         (3, 'c', 'APAC', '2026-06-05'), (4, '{}', 'EMEA', '2026-07-01')",
        match server {
            Server::Postgres => HOSTILE.replace('\'', "''"),
            // The test's own session reads backslashes as escapes.
            Server::Mysql => HOSTILE.replace('\\', "\\\\").replace('\'', "''"),
        }
    ))
    .await;
    let ws = Workspace::new();
    let file = ws.write(
        "p.toml",
        format!(
            r#"name = "people-by-region"
[params]
region = "APAC"
since = 2026-01-01
note = "none"
[connections.db]
url = "{}"
[sources.people]
connection = "db"
query = "SELECT id, name FROM people WHERE region = ${{params.region}} AND joined >= ${{params.since}}"
[[steps]]
name = "noted"
sql = "SELECT id, name, ${{params.note}} AS note FROM people"
[target]
connection = "out"
table = "picked"
mode = "upsert"
key = "id"
create = true
[connections.out]
url = "sqlite://out.db"
"#,
            db.url()
        ),
    );
    let file = file.to_str().unwrap();
    let note = format!("--param=note={HOSTILE}");
    let (code, printed) = ferry(&[
        "run",
        file,
        "--quiet",
        "--param",
        "region=EMEA",
        "--param",
        "since=2026-06-01",
        &note,
    ]);
    assert_eq!(code, 0, "{printed}");
    assert_eq!(
        sqlite_rows(&ws.join("out.db"), "SELECT id, name, note FROM picked"),
        rows(&[&["2", "b", HOSTILE], &["4", HOSTILE, HOSTILE]])
    );
    // A region written to widen the filter matches no region.
    let widen = "--param=region=EMEA' OR '1'='1";
    let (code, printed) = ferry(&["run", file, "--quiet", widen, "--param=since=2000-01-01"]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("rows written  0"), "{printed}");
    let (code, printed) = ferry(&["run", file, "--quiet", "--param=region=EMEA\\' OR 1=1 -- "]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("rows written  0"), "{printed}");
    // Nothing ran but the queries: the table is whole.
    assert_eq!(
        db.rows("SELECT count(*) FROM people").await,
        rows(&[&["4"]])
    );
    // A value of the wrong type is refused before anything runs, naming the parameter.
    let (code, printed) = ferry(&["run", file, "--param", "since=last week"]);
    assert_eq!(code, 2, "{printed}");
    assert!(
        printed.contains("--param since: \"last week\" is not a date"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_params_are_literals_never_sql() {
    hostile_values_arrive_as_text(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_params_are_literals_never_sql() {
    hostile_values_arrive_as_text(Server::Mysql).await;
}

/// The second run reads only the rows changed since the first one started: the row edited without
/// touching `changed_at` stays as the first run loaded it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_success_time_reads_only_what_changed() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec(
        "CREATE TABLE events (id INT PRIMARY KEY, what TEXT, changed_at TIMESTAMPTZ); \
         INSERT INTO events VALUES (1, 'old', '2020-01-01 00:00:00+00'), (2, 'old', '2020-01-02 00:00:00+00')",
    )
    .await;
    let ws = Workspace::new();
    let file = ws.write(
        "p.toml",
        format!(
            r#"name = "changed-events"
[connections.db]
url = "{}"
[connections.out]
url = "sqlite://out.db"
[sources.events]
connection = "db"
query = "SELECT id, what FROM events WHERE changed_at >= ${{run.last_success_time}}"
[target]
connection = "out"
table = "events"
mode = "upsert"
key = "id"
create = true
"#,
            db.url()
        ),
    );
    let file = file.to_str().unwrap();
    let (code, printed) = ferry(&["run", file, "--quiet"]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("rows written  2"), "{printed}");
    db.exec(
        "UPDATE events SET what = 'edited quietly' WHERE id = 1; \
         INSERT INTO events VALUES (3, 'new', now())",
    )
    .await;
    let (code, printed) = ferry(&["run", file, "--quiet"]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("rows written  1"), "{printed}");
    assert_eq!(
        sqlite_rows(&ws.join("out.db"), "SELECT id, what FROM events"),
        rows(&[&["1", "old"], &["2", "old"], &["3", "new"]])
    );
}
