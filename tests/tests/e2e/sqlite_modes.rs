//! SQLite, all four write modes, each run twice, and what each must leave behind.

use ferry::run::{RunReport, Status};
use ferry_tests::{Workspace, rows, run, sqlite_rows};

/// Writes `csv` as the source and runs it into `db.sqlite` table `t` with the given target settings.
async fn load(ws: &Workspace, csv: &str, target: &str) -> RunReport {
    ws.write("in/src.csv", csv);
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "modes"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
batch_size = 2
workers = 3
{target}
"#
        ),
    );
    run(&pipeline).await
}

fn table(ws: &Workspace, sql: &str) -> Vec<Vec<String>> {
    sqlite_rows(&ws.join("db.sqlite"), sql)
}

const FIRST: &str = "id,name,score\n1,a,10\n2,b,20\n3,c,30\n";
const SECOND: &str = "id,name,score\n2,B,21\n3,c,30\n4,d,40\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_skips_existing_keys_and_counts_them() {
    let ws = Workspace::new();
    let target = "table = \"t\"\nmode = \"insert\"\nkey = \"id\"\ncreate = true";
    let first = load(&ws, FIRST, target).await;
    assert_eq!(
        (first.status, first.rows_written, first.rows_skipped),
        (Status::Completed, 3, 0),
        "{first}"
    );
    let second = load(&ws, SECOND, target).await;
    assert_eq!(
        (second.status, second.rows_written, second.rows_skipped),
        (Status::Completed, 1, 2),
        "{second}"
    );
    assert_eq!(
        table(&ws, "SELECT id, name, score FROM t"),
        rows(&[
            &["1", "a", "10"],
            &["2", "b", "20"],
            &["3", "c", "30"],
            &["4", "d", "40"]
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_updates_by_key_and_keeps_the_rest() {
    let ws = Workspace::new();
    let target = "table = \"t\"\nmode = \"upsert\"\nkey = [\"id\"]\ncreate = true";
    assert_eq!(load(&ws, FIRST, target).await.status, Status::Completed);
    let second = load(&ws, SECOND, target).await;
    assert_eq!(
        (second.status, second.rows_written),
        (Status::Completed, 3),
        "{second}"
    );
    assert_eq!(
        table(&ws, "SELECT id, name, score FROM t"),
        rows(&[
            &["1", "a", "10"],
            &["2", "B", "21"],
            &["3", "c", "30"],
            &["4", "d", "40"]
        ])
    );
    // The same input again changes nothing.
    assert_eq!(load(&ws, SECOND, target).await.status, Status::Completed);
    assert_eq!(table(&ws, "SELECT count(*) FROM t"), rows(&[&["4"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_replaces_the_rows_and_a_failure_keeps_the_old_ones() {
    let ws = Workspace::new();
    {
        let conn = rusqlite::Connection::open(ws.join("db.sqlite")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER)",
        )
        .unwrap();
    }
    let target = "table = \"t\"\nmode = \"truncate\"";
    assert_eq!(load(&ws, FIRST, target).await.status, Status::Completed);
    let second = load(&ws, SECOND, target).await;
    assert_eq!(
        (second.status, second.rows_written),
        (Status::Completed, 3),
        "{second}"
    );
    assert_eq!(
        table(&ws, "SELECT id, name, score FROM t"),
        rows(&[&["2", "B", "21"], &["3", "c", "30"], &["4", "d", "40"]])
    );
    // A run that fails midway (the step divides by zero on id 9) leaves the previous rows and no staging.
    ws.write("in/src.csv", "id,name,score\n7,x,1\n8,y,2\n9,z,3\n");
    let failing = ws.pipeline(
        "fail.toml",
        r#"name = "modes"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "s"
sql = "SELECT id, name, 100 / (9 - id) AS score FROM src"
[target]
connection = "db"
batch_size = 1
workers = 1
table = "t"
mode = "truncate"
"#,
    );
    let failed = run(&failing).await;
    assert_eq!(failed.status, Status::Failed, "{failed}");
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or("")
            .contains("Divide by zero"),
        "{failed}"
    );
    assert_eq!(
        table(&ws, "SELECT id, name, score FROM t"),
        rows(&[&["2", "B", "21"], &["3", "c", "30"], &["4", "d", "40"]])
    );
    assert_eq!(
        table(
            &ws,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '_ferry_%'"
        ),
        rows(&[&["0"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_with_a_bad_row_replaces_with_the_good_rows_and_quarantines_the_bad_one() {
    let ws = Workspace::new();
    {
        let conn = rusqlite::Connection::open(ws.join("db.sqlite")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER)",
        )
        .unwrap();
    }
    let target = "table = \"t\"\nmode = \"truncate\"";
    assert_eq!(load(&ws, FIRST, target).await.status, Status::Completed);
    let bad = load(&ws, "id,name,score\n7,x,1\n8,,2\n9,z,3\n", target).await;
    assert_eq!(
        (bad.status, bad.rows_written, bad.rows_rejected),
        (Status::PartialSuccess, 2, 1),
        "{bad}"
    );
    assert_eq!(
        table(&ws, "SELECT id, name, score FROM t"),
        rows(&[&["7", "x", "1"], &["9", "z", "3"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_deletes_rows_whose_key_left_the_source() {
    let ws = Workspace::new();
    let target = "table = \"t\"\nmode = \"sync\"\nkey = [\"id\"]\ncreate = true";
    assert_eq!(load(&ws, FIRST, target).await.status, Status::Completed);
    let second = load(&ws, SECOND, target).await;
    assert_eq!(
        (second.status, second.rows_written, second.rows_deleted),
        (Status::Completed, 3, 1),
        "{second}"
    );
    assert_eq!(
        table(&ws, "SELECT id, name, score FROM t"),
        rows(&[&["2", "B", "21"], &["3", "c", "30"], &["4", "d", "40"]])
    );
    let third = load(&ws, SECOND, target).await;
    assert_eq!(
        (third.status, third.rows_deleted),
        (Status::Completed, 0),
        "{third}"
    );
    assert_eq!(table(&ws, "SELECT count(*) FROM t"), rows(&[&["3"]]));
}

#[tokio::test]
async fn keyed_modes_need_a_unique_index_and_say_how_to_add_one() {
    let ws = Workspace::new();
    {
        let conn = rusqlite::Connection::open(ws.join("db.sqlite")).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER, name TEXT, score INTEGER)")
            .unwrap();
    }
    ws.write("in/src.csv", FIRST);
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "x"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "t"
mode = "upsert"
key = ["id"]
"#,
    );
    let err = ferry::run::run(&pipeline, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("table \"t\" has no primary key or unique index on (id)"),
        "{err}"
    );
    assert!(
        err.contains("CREATE UNIQUE INDEX ON \"t\" (\"id\")"),
        "{err}"
    );
    assert_eq!(table(&ws, "SELECT count(*) FROM t"), rows(&[&["0"]]));
}

#[tokio::test]
async fn a_missing_table_without_create_is_refused_before_writing() {
    let ws = Workspace::new();
    ws.write("in/src.csv", FIRST);
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "x"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "nope"
mode = "insert"
"#,
    );
    let err = ferry::run::run(&pipeline, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("set create = true"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_identifiers_are_quoted_not_executed() {
    let ws = Workspace::new();
    {
        let conn = rusqlite::Connection::open(ws.join("db.sqlite")).unwrap();
        conn.execute_batch("CREATE TABLE victim (x INTEGER); INSERT INTO victim VALUES (1);")
            .unwrap();
    }
    ws.write("in/src.csv", "id,v\n1,a\n2,b\n");
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "x"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "odd"
sql = 'SELECT id AS "k""; DROP TABLE victim; --", v AS "v`;" FROM src'
[target]
connection = "db"
table = 'we"ird; DROP TABLE victim; --'
mode = "upsert"
key = ['k"; DROP TABLE victim; --']
create = true
"#,
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    assert_eq!(table(&ws, "SELECT x FROM victim"), rows(&[&["1"]]));
    assert_eq!(
        table(
            &ws,
            r#"SELECT "k""; DROP TABLE victim; --", "v`;" FROM "we""ird; DROP TABLE victim; --""#
        ),
        rows(&[&["1", "a"], &["2", "b"]])
    );
}

/// `ferry validate` names every problem the target would have, column types SQLite cannot store
/// among them (they were lost behind the key checks' list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_a_column_type_sqlite_cannot_store() {
    let ws = Workspace::new();
    ws.write("in/src.csv", FIRST);
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "types"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "result"
sql = "SELECT id, make_array(score, score) AS scores FROM src"
[target]
connection = "db"
table = "t"
mode = "upsert"
key = "id"
create = true
"#,
    );
    let checked = ferry::run::validate::check(&pipeline).await.unwrap();
    let problems: Vec<String> = checked.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("column \"scores\" has type List")
                && p.contains("SQLite cannot store")),
        "{problems:#?}"
    );
}
