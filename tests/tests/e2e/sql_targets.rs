//! PostgreSQL and MariaDB targets on the machine's real servers: every mode run twice, bad rows
//! isolated, hostile identifiers, and validate's privilege report. Each scenario runs on both servers.

use ferry::run::{RunReport, Status};
use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, read_delta, rows, run};

const FIRST: &str = "id,name,score\n1,a,10\n2,b,20\n3,c,30\n";
const SECOND: &str = "id,name,score\n2,B,21\n3,c,30\n4,d,40\n";

/// Runs `csv` into `db` with the given target settings (batches of 2 rows unless they say otherwise).
async fn load(ws: &Workspace, db: &TestDb, csv: &str, target: &str) -> RunReport {
    ws.write("in/src.csv", csv);
    let batch = if target.contains("batch_size") {
        ""
    } else {
        "batch_size = 2\n"
    };
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "modes"
[connections.db]
url = "{}"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
{batch}workers = 3
{target}
"#,
            db.url()
        ),
    );
    run(&pipeline).await
}

async fn modes_each_run_twice(server: Server) {
    let db = TestDb::new(server).await;
    let ws = Workspace::new();

    // insert: new keys land, existing ones are skipped and counted, never failed.
    let insert = "table = \"ins\"\nmode = \"insert\"\nkey = \"id\"\ncreate = true";
    let first = load(&ws, &db, FIRST, insert).await;
    assert_eq!(
        (first.status, first.rows_written, first.rows_skipped),
        (Status::Completed, 3, 0),
        "{first}"
    );
    let second = load(&ws, &db, SECOND, insert).await;
    assert_eq!(
        (second.status, second.rows_written, second.rows_skipped),
        (Status::Completed, 1, 2),
        "{second}"
    );
    assert_eq!(
        db.rows("SELECT id, name, score FROM ins").await,
        rows(&[
            &["1", "a", "10"],
            &["2", "b", "20"],
            &["3", "c", "30"],
            &["4", "d", "40"]
        ])
    );

    // upsert: changed rows updated, new ones inserted, the rest kept; the same input again is a no-op.
    let upsert = "table = \"ups\"\nmode = \"upsert\"\nkey = \"id\"\ncreate = true";
    assert_eq!(
        load(&ws, &db, FIRST, upsert).await.status,
        Status::Completed
    );
    let second = load(&ws, &db, SECOND, upsert).await;
    assert_eq!(
        (second.status, second.rows_written),
        (Status::Completed, 3),
        "{second}"
    );
    let expected = rows(&[
        &["1", "a", "10"],
        &["2", "B", "21"],
        &["3", "c", "30"],
        &["4", "d", "40"],
    ]);
    assert_eq!(db.rows("SELECT id, name, score FROM ups").await, expected);
    assert_eq!(
        load(&ws, &db, SECOND, upsert).await.status,
        Status::Completed
    );
    assert_eq!(db.rows("SELECT id, name, score FROM ups").await, expected);

    // truncate: the second run's rows replace the first's.
    let truncate = "table = \"tru\"\nmode = \"truncate\"\nkey = \"id\"\ncreate = true";
    assert_eq!(
        load(&ws, &db, FIRST, truncate).await.status,
        Status::Completed
    );
    let second = load(&ws, &db, SECOND, truncate).await;
    assert_eq!(
        (second.status, second.rows_written),
        (Status::Completed, 3),
        "{second}"
    );
    assert_eq!(
        db.rows("SELECT id, name, score FROM tru").await,
        rows(&[&["2", "B", "21"], &["3", "c", "30"], &["4", "d", "40"]])
    );

    // sync: upsert, then the key the source lost (1) is deleted and counted.
    let sync = "table = \"syn\"\nmode = \"sync\"\nkey = \"id\"\ncreate = true";
    assert_eq!(load(&ws, &db, FIRST, sync).await.status, Status::Completed);
    // --dry-run first: 4 is new, 2 changed, 3 as it was, 1 would go; and nothing is written.
    ws.write("in/src.csv", SECOND);
    let dry = ferry::run::dry_run::dry_run(&ws.pipeline(
        "p.toml",
        &std::fs::read_to_string(ws.join("p.toml")).unwrap(),
    ))
    .await
    .unwrap();
    assert_eq!(
        dry,
        ferry::run::dry_run::Changes {
            inserts: 1,
            updates: 1,
            unchanged: 1,
            deletes: 1
        }
    );
    assert_eq!(
        db.rows("SELECT id, name, score FROM syn").await,
        rows(&[&["1", "a", "10"], &["2", "b", "20"], &["3", "c", "30"]])
    );
    let second = load(&ws, &db, SECOND, sync).await;
    assert_eq!(
        (second.status, second.rows_written, second.rows_deleted),
        (Status::Completed, 3, 1),
        "{second}"
    );
    assert_eq!(
        db.rows("SELECT id, name, score FROM syn").await,
        rows(&[&["2", "B", "21"], &["3", "c", "30"], &["4", "d", "40"]])
    );
    // No staging table is left behind.
    let leftovers = match server {
        Server::Postgres => "SELECT tablename FROM pg_tables WHERE tablename LIKE '%ferry%'",
        Server::Mysql => {
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%ferry%'"
        }
    };
    assert_eq!(db.rows(leftovers).await, Vec::<Vec<String>>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_modes_each_run_twice() {
    modes_each_run_twice(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_modes_each_run_twice() {
    modes_each_run_twice(Server::Mysql).await;
}

async fn bad_rows_are_isolated(server: Server) {
    // Each write path: insert (PostgreSQL's direct COPY, MySQL's LOAD DATA) and upsert (the stage).
    for mode in ["insert", "upsert"] {
        bad_rows_are_isolated_in(server, mode).await;
    }
}

async fn bad_rows_are_isolated_in(server: Server, mode: &str) {
    let db = TestDb::new(server).await;
    db.exec(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL, score INT CHECK (score >= 0))",
    )
    .await;
    let ws = Workspace::new();
    let mut csv = String::from("id,name,score\n");
    for i in 1..=20 {
        let line = match i {
            4 => "4,,40\n".to_string(),
            9 => "9,much too long,90\n".to_string(),
            15 => "15,o,-1\n".to_string(),
            _ => format!("{i},n{i},{i}\n"),
        };
        csv.push_str(&line);
    }
    let report = load(
        &ws,
        &db,
        &csv,
        &format!("table = \"t\"\nmode = \"{mode}\"\nkey = \"id\"\nbatch_size = 10"),
    )
    .await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 17, 3),
        "{mode}: {report}"
    );
    assert_eq!(db.rows("SELECT count(*) FROM t").await, rows(&[&["17"]]));
    assert_eq!(
        db.rows("SELECT id FROM t WHERE id IN (4, 9, 15)").await,
        Vec::<Vec<String>>::new()
    );
    let (_, quarantined) = read_delta(
        &ws.join(".ferry/quarantine/t"),
        "SELECT id, _ferry_cause, _ferry_error FROM t ORDER BY id",
    )
    .await;
    let ids: Vec<&str> = quarantined.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["15", "4", "9"], "{quarantined:?}");
    let by_id = |id: &str| quarantined.iter().find(|r| r[0] == id).unwrap().clone();
    assert_eq!(
        by_id("4")[1],
        "a required column is empty",
        "{quarantined:?}"
    );
    assert_eq!(
        by_id("9")[1],
        "a value is too long for its column",
        "{quarantined:?}"
    );
    assert_eq!(
        by_id("15")[1],
        "a check constraint rejected a value",
        "{quarantined:?}"
    );
    // The database's own words.
    let too_long = &by_id("9")[2];
    match server {
        Server::Postgres => assert!(
            too_long.contains("value too long for type character varying(5)"),
            "{too_long}"
        ),
        Server::Mysql => assert!(
            too_long.contains("Data too long for column 'name'"),
            "{too_long}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bad_rows_are_isolated() {
    bad_rows_are_isolated(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_bad_rows_are_isolated() {
    bad_rows_are_isolated(Server::Mysql).await;
}

/// A value LOAD DATA cannot carry (NaN: MySQL has none) deep in a batch of 5,000: the row goes to
/// quarantine naming its column, and every other row lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_a_value_load_data_cannot_carry_is_quarantined_and_the_rest_lands_once() {
    let db = TestDb::new(Server::Mysql).await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, score DOUBLE)")
        .await;
    let ws = Workspace::new();
    let mut csv = String::from("id\n");
    for i in 1..=5000 {
        csv.push_str(&format!("{i}\n"));
    }
    ws.write("in/src.csv", &csv);
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "nan"
[connections.db]
url = "{}"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "scored"
sql = "SELECT id, CASE WHEN id = 3000 THEN CAST('NaN' AS DOUBLE) ELSE CAST(id AS DOUBLE) END AS score FROM src"
[target]
connection = "db"
table = "t"
mode = "insert"
key = "id"
batch_size = 5000
workers = 1
"#,
            db.url()
        ),
    );
    let report = run(&pipeline).await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 4999, 1),
        "{report}"
    );
    // Every other row, once, with its own score (`rows` gives them sorted as text).
    let mut landed: Vec<Vec<String>> = (1..=5000)
        .filter(|i| *i != 3000)
        .map(|i| vec![i.to_string()])
        .collect();
    landed.sort();
    assert_eq!(db.rows("SELECT id FROM t WHERE score = id").await, landed);
    assert_eq!(db.rows("SELECT count(*) FROM t").await, rows(&[&["4999"]]));
    let (_, quarantined) = read_delta(
        &ws.join(".ferry/quarantine/t"),
        "SELECT id, _ferry_error FROM t",
    )
    .await;
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0][0], "3000", "{quarantined:?}");
    assert!(
        quarantined[0][1].contains("column \"score\"")
            && quarantined[0][1].contains("MySQL has no NaN or infinity"),
        "{quarantined:?}"
    );
}

async fn upsert_never_overwrites_another_unique_row(server: Server) {
    let db = TestDb::new(server).await;
    db.exec("CREATE TABLE u (id BIGINT PRIMARY KEY, email VARCHAR(50) NOT NULL UNIQUE)")
        .await;
    db.exec("INSERT INTO u VALUES (1, 'a@x'), (2, 'b@x')").await;
    let ws = Workspace::new();
    // Row 3 takes the email of row 1: an error for row 3, not an update of row 1.
    let report = load(
        &ws,
        &db,
        "id,email\n2,b2@x\n3,a@x\n",
        "table = \"u\"\nmode = \"upsert\"\nkey = \"id\"",
    )
    .await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 1, 1),
        "{report}"
    );
    assert_eq!(
        db.rows("SELECT id, email FROM u").await,
        rows(&[&["1", "a@x"], &["2", "b2@x"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upsert_never_overwrites_another_unique_row() {
    upsert_never_overwrites_another_unique_row(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_upsert_never_overwrites_another_unique_row() {
    upsert_never_overwrites_another_unique_row(Server::Mysql).await;
}

async fn hostile_identifiers_cannot_inject(server: Server) {
    let db = TestDb::new(server).await;
    db.exec("CREATE TABLE sentinel (x INT)").await;
    let ws = Workspace::new();
    ws.write("in/src.csv", "id,name\n1,a\n2,b\n");
    let table = "t\"; DROP TABLE sentinel; -- `x` ';";
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "hostile"
[connections.db]
url = "{}"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "result"
sql = '''SELECT id AS "k`"";--", name AS "v'); DROP TABLE sentinel; --" FROM src'''
[target]
connection = "db"
table = '''{table}'''
mode = "upsert"
key = '''k`";--'''
create = true
"#,
            db.url()
        ),
    );
    for _ in 0..2 {
        let report = run(&pipeline).await;
        assert_eq!(
            (report.status, report.rows_written),
            (Status::Completed, 2),
            "{report}"
        );
    }
    assert_eq!(
        db.rows("SELECT count(*) FROM sentinel").await,
        rows(&[&["0"]])
    );
    let quoted = match server {
        Server::Postgres => format!("\"{}\"", table.replace('"', "\"\"")),
        Server::Mysql => format!("`{}`", table.replace('`', "``")),
    };
    assert_eq!(
        db.rows(&format!("SELECT count(*) FROM {quoted}")).await,
        rows(&[&["2"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hostile_identifiers_cannot_inject() {
    hostile_identifiers_cannot_inject(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_hostile_identifiers_cannot_inject() {
    hostile_identifiers_cannot_inject(Server::Mysql).await;
}

/// The tests' databases live on servers of their own, in temporary folders (unless FERRY_TEST_PG /
/// FERRY_TEST_MYSQL name existing servers): never the machine's own databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tests_run_on_throwaway_servers_in_temporary_folders() {
    for server in [Server::Postgres, Server::Mysql] {
        let db = TestDb::new(server).await;
        let Some(folder) = &server.info().folder else {
            eprintln!("{server:?}: an existing server was named; nothing to check");
            continue;
        };
        let asked = match server {
            Server::Postgres => "SHOW data_directory",
            Server::Mysql => "SELECT @@datadir",
        };
        let dir = db.rows(asked).await[0][0].clone();
        assert!(
            dir.starts_with(&folder.display().to_string())
                && dir.starts_with(&std::env::temp_dir().display().to_string()),
            "{server:?}: data in {dir}, not under {}",
            folder.display()
        );
    }
}

/// MySQL 8 refuses `LOAD DATA LOCAL` unless the server allows it (`local_infile=OFF` by default):
/// plain inserts fall back to multi-row INSERT, every row lands, and the summary says why it was
/// slower and what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_without_local_infile_falls_back_to_insert_and_says_so() {
    use mysql_async::prelude::Queryable;
    let server = ferry_tests::servers::mysql_without_local_infile();
    let root = format!("mysql://{}@{}:{}", server.user, server.host, server.port);
    let mut admin = mysql_async::Conn::from_url(format!("{root}/"))
        .await
        .unwrap();
    admin
        .query_drop("CREATE DATABASE IF NOT EXISTS infile_off")
        .await
        .unwrap();
    admin
        .query_drop("DROP TABLE IF EXISTS infile_off.t")
        .await
        .unwrap();
    let ws = Workspace::new();
    let mut csv = String::from("id,name\n");
    for i in 0..500 {
        csv.push_str(&format!("{i},name {i}\n"));
    }
    ws.write("in/src.csv", csv);
    let pipeline = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "infile-off"
[connections.db]
url = "{root}/infile_off"

[sources.src]
path = "in/src.csv"

[target]
connection = "db"
table = "t"
create = true
batch_size = 100
"#
        ),
    );
    let report = run(&pipeline).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 500),
        "{report}"
    );
    let landed: Vec<(i64, String)> = admin
        .query("SELECT id, name FROM infile_off.t ORDER BY id")
        .await
        .unwrap();
    let expected: Vec<(i64, String)> = (0..500).map(|i| (i, format!("name {i}"))).collect();
    assert_eq!(landed, expected);
    let summary = report.to_string();
    assert!(
        summary.contains("LOAD DATA LOCAL") && summary.contains("local_infile"),
        "{summary}"
    );
    admin.disconnect().await.ok();
}

/// Text of every shape a user's data holds (quotes, backslashes, tabs, line breaks, accents, astral
/// characters, leading and trailing spaces, the empty string) and 64-bit integers at their extremes,
/// generated at random, go through each server's encoder (binary COPY for PostgreSQL, SQL literals
/// and LOAD DATA for MariaDB) and come back exactly as they were.
async fn random_values_round_trip(server: Server) {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use ferry_tests::fuzz::Rng;

    const PIECES: &[&str] = &[
        "a", "Z", "0", " ", "  ", "'", "''", "\"", "\\", "\\\\", "\\N", "\t", "\n", "\r\n", ",",
        ";", "é", "ß", "日本", "𝄞", "😀", "\u{200b}", "%", "_", "NULL", "null", "--", "/*", "$1",
        "?",
    ];
    let mut rng = Rng::new(0x7e57 + server as u64);
    let n = 400;
    let mut ids = Vec::with_capacity(n);
    let mut texts = Vec::with_capacity(n);
    for i in 0..n {
        let id = match i {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => 0,
            _ => rng.next_u64() as i64,
        };
        let text: String = (0..rng.below(12))
            .map(|_| PIECES[rng.below(PIECES.len())])
            .collect();
        ids.push(id);
        texts.push(text);
    }
    ids.sort();
    ids.dedup();
    texts.truncate(ids.len());
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("txt", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(texts.clone())),
        ],
    )
    .unwrap();
    let ws = Workspace::new();
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.read_batch(batch)
        .unwrap()
        .write_parquet(
            ws.join("in/values.parquet").to_str().unwrap(),
            datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .unwrap();
    let db = TestDb::new(server).await;
    // Twice: the first run loads straight into the table, the second goes through the stage.
    for mode in ["insert", "upsert"] {
        let pipeline = ws.pipeline(
            "p.toml",
            &format!(
                r#"name = "round-trip"
[connections.db]
url = "{}"

[sources.src]
path = "in/values.parquet"

[target]
connection = "db"
table = "t"
mode = "{mode}"
key = "id"
create = true
batch_size = 50
"#,
                db.url()
            ),
        );
        let report = run(&pipeline).await;
        assert_eq!(
            (report.status, report.rows_rejected),
            (Status::Completed, 0),
            "{server:?} {mode}: {report}"
        );
    }
    let got = db.rows("SELECT id, txt FROM t").await;
    let mut expected: Vec<Vec<String>> = ids
        .iter()
        .zip(&texts)
        .map(|(id, t)| vec![id.to_string(), t.clone()])
        .collect();
    expected.sort();
    assert_eq!(got.len(), expected.len(), "{server:?}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "{server:?}: {:?} came back as {:?}", e[1], g[1]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_random_values_round_trip() {
    random_values_round_trip(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_random_values_round_trip() {
    random_values_round_trip(Server::Mysql).await;
}

/// A row the table already holds as the source has it is not written again (no new row version:
/// its `xmin` stays), a changed row is, and a table whose columns have no exact equality (json)
/// is upserted as before, every row updated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upsert_and_sync_leave_unchanged_rows_as_they_are() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, score INT)")
        .await;
    let ws = Workspace::new();
    let report = load(
        &ws,
        &db,
        FIRST,
        "table = \"t\"\nmode = \"upsert\"\nkey = \"id\"",
    )
    .await;
    assert_eq!(report.rows_written, 3, "{report}");
    let versions = async || db.rows("SELECT id, xmin::text FROM t ORDER BY id").await;
    let before = versions().await;
    // Row 2 changes, row 3 is as it was, row 4 is new, row 1 leaves (sync deletes it).
    let report = load(
        &ws,
        &db,
        SECOND,
        "table = \"t\"\nmode = \"sync\"\nkey = \"id\"",
    )
    .await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_deleted),
        (Status::Completed, 3, 1),
        "{report}"
    );
    assert_eq!(
        db.rows("SELECT id, name, score FROM t ORDER BY id").await,
        rows(&[&["2", "B", "21"], &["3", "c", "30"], &["4", "d", "40"]])
    );
    let after = versions().await;
    assert_eq!(
        after[1], before[2],
        "row 3 was written again: {before:?} {after:?}"
    );
    assert_ne!(
        after[0][1], before[1][1],
        "row 2 was not updated: {before:?} {after:?}"
    );

    // json has no equality operator: every row is updated, as before, and nothing fails.
    db.exec("CREATE TABLE j (id BIGINT PRIMARY KEY, doc JSON, name TEXT)")
        .await;
    db.exec("INSERT INTO j VALUES (1, '{\"a\": 1}', 'x'), (2, '{\"b\": 2}', 'y')")
        .await;
    let report = load(
        &ws,
        &db,
        "id,doc,name\n1,\"{\"\"a\"\": 1}\",x\n2,\"{\"\"b\"\": 3}\",y\n",
        "table = \"j\"\nmode = \"upsert\"\nkey = \"id\"",
    )
    .await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 2),
        "{report}"
    );
    assert_eq!(
        db.rows("SELECT id, doc::text, name FROM j ORDER BY id")
            .await,
        rows(&[&["1", "{\"a\": 1}", "x"], &["2", "{\"b\": 3}", "y"]])
    );
}
