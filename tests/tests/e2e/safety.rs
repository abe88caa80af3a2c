//! Nothing lost, ever: the ways a sync, a truncate or a long table name could delete or corrupt a
//! user's rows, each tried on every target it applies to (SQLite, PostgreSQL, MariaDB, OData).

use ferry::run::Status;
use ferry_emulator::limits::Limits;
use ferry_emulator::{self as emulator, Config, Faults, Latency, Running};
use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, rows, run, sqlite_rows};

/// The target before the sync: four rows; the source then updates 1, sends 2 and 3 with values the
/// table refuses, adds 4 and no longer has 9.
const REFUSED_SOURCE: &str = "id,name,score\n1,A,10\n2,b,-1\n3,much too long,30\n4,d,40\n";

fn sync_pipeline(url: &str) -> String {
    format!(
        r#"name = "refused"
[connections.db]
url = "{url}"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "t"
mode = "sync"
key = "id"
batch_size = 10
"#
    )
}

/// What a sync whose updates of 2 and 3 were refused must leave: their old rows.
fn after_refused_sync() -> Vec<Vec<String>> {
    rows(&[
        &["1", "A", "10"],
        &["2", "b", "2"],
        &["3", "c", "3"],
        &["4", "d", "40"],
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sync_keeps_the_rows_whose_update_was_refused() {
    let ws = Workspace::new();
    let db = ws.join("t.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) <= 5), score INTEGER CHECK (score >= 0));
             INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (9, 'z', 9);",
        )
        .unwrap();
    ws.write("in/src.csv", REFUSED_SOURCE);
    let p = ws.pipeline("p.toml", &sync_pipeline("sqlite://t.db"));
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_rejected, report.rows_deleted),
        (Status::PartialSuccess, 2, 1),
        "{report}"
    );
    assert_eq!(
        sqlite_rows(&db, "SELECT id, name, score FROM t"),
        after_refused_sync()
    );
}

async fn sync_keeps_refused_rows(server: Server) {
    let db = TestDb::new(server).await;
    db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL, score INT CHECK (score >= 0))")
        .await;
    db.exec("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (9, 'z', 9)")
        .await;
    let ws = Workspace::new();
    ws.write("in/src.csv", REFUSED_SOURCE);
    let report = run(&ws.pipeline("p.toml", &sync_pipeline(&db.url()))).await;
    assert_eq!(
        (report.status, report.rows_rejected, report.rows_deleted),
        (Status::PartialSuccess, 2, 1),
        "{server:?}: {report}"
    );
    assert_eq!(
        db.rows("SELECT id, name, score FROM t").await,
        after_refused_sync(),
        "{server:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_keeps_the_rows_whose_update_was_refused() {
    sync_keeps_refused_rows(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_sync_keeps_the_rows_whose_update_was_refused() {
    sync_keeps_refused_rows(Server::Mysql).await;
}

/// A key with an empty part that the source still has is not deleted (it was, compared with `=`).
async fn sync_keeps_keys_with_a_null_part(server: Server) {
    let db = TestDb::new(server).await;
    db.exec("CREATE TABLE n (a INT NOT NULL, b INT, v VARCHAR(10), UNIQUE (a, b))")
        .await;
    db.exec("INSERT INTO n VALUES (1, NULL, 'x'), (2, NULL, 'y'), (3, 3, 'z')")
        .await;
    let ws = Workspace::new();
    ws.write("in/src.csv", "a,b,v\n1,,x\n3,3,z\n");
    let p = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "nulls"
[connections.db]
url = "{}"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "n"
mode = "sync"
key = ["a", "b"]
"#,
            db.url()
        ),
    );
    let report = run(&p).await;
    assert_eq!(report.status, Status::Completed, "{server:?}: {report}");
    assert_eq!(
        db.rows("SELECT DISTINCT a, b FROM n").await,
        rows(&[&["1", "NULL"], &["3", "3"]]),
        "{server:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_keeps_keys_with_a_null_part() {
    sync_keeps_keys_with_a_null_part(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_sync_keeps_keys_with_a_null_part() {
    sync_keeps_keys_with_a_null_part(Server::Mysql).await;
}

/// Helper tables of a table whose name is as long as the server allows: PostgreSQL cut
/// `<t>__ferry_stage` to the table's own name (and the clean-up dropped the target); MySQL refused.
async fn longest_names_work_in_every_mode(server: Server) {
    let db = TestDb::new(server).await;
    let table = match server {
        Server::Postgres => "t".repeat(63),
        Server::Mysql => "t".repeat(64),
    };
    db.exec(&format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(20))"
    ))
    .await;
    let values: Vec<String> = (1..=100).map(|i| format!("({i}, 'old {i}')")).collect();
    db.exec(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
        .await;
    let ws = Workspace::new();
    ws.write("in/src.csv", "id,name\n1,new 1\n2,new 2\n101,new 101\n");
    for mode in ["upsert", "insert", "sync", "truncate"] {
        let p = ws.pipeline(
            "p.toml",
            &format!(
                r#"name = "long-{mode}"
[connections.db]
url = "{}"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "{table}"
mode = "{mode}"
key = "id"
"#,
                db.url()
            ),
        );
        let report = run(&p).await;
        assert_eq!(
            report.status,
            Status::Completed,
            "{server:?} {mode}: {report}"
        );
        let count = db.rows(&format!("SELECT count(*) FROM {table}")).await;
        let want = match mode {
            "upsert" | "insert" => "101",
            _ => "3",
        };
        assert_eq!(count, rows(&[&[want]]), "{server:?} {mode}");
    }
    assert_eq!(
        db.rows(&format!("SELECT id, name FROM {table}")).await,
        rows(&[&["1", "new 1"], &["101", "new 101"], &["2", "new 2"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_longest_table_names_work_in_every_mode() {
    longest_names_work_in_every_mode(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_longest_table_names_work_in_every_mode() {
    longest_names_work_in_every_mode(Server::Mysql).await;
}

async fn emulator() -> Running {
    emulator_with(Faults::default(), None).await
}

/// An emulator with `faults`, keeping its records in `data_file` when given (so that a second one can
/// serve them after the first stopped).
async fn emulator_with(faults: Faults, data_file: Option<std::path::PathBuf>) -> Running {
    let config = Config {
        limits: Limits::off(),
        latency: Latency::none(),
        faults,
        data_file,
        ..Config::default()
    };
    emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn odata_pipeline(emu: &Running, source: &str, target: &str) -> String {
    format!(
        r#"name = "crm"
[connections.crm]
url = "{url}"
kind = "dataverse"
auth = "client_credentials"
token_url = "{token}"
client_id = "app-1"
client_secret = "x"
[sources.src]
path = "in/{source}"
[target]
connection = "crm"
table = "accounts"
{target}
[run]
max_retries = 2
"#,
        url = emu.url(),
        token = emu.token_url()
    )
}

/// Every account in the emulator as (accountid, accountnumber, name), sorted.
async fn odata_accounts(emu: &Running) -> Vec<Vec<String>> {
    let records = ferry_tests::odata_records(
        &emu.url(),
        &emu.token_url(),
        "accounts",
        "accountid,accountnumber,name",
    )
    .await;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("NULL").to_string();
    let mut out: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                text(&r["accountid"]),
                text(&r["accountnumber"]),
                text(&r["name"]),
            ]
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odata_sync_keeps_the_records_whose_update_was_refused() {
    let emu = emulator().await;
    let ws = Workspace::new();
    ws.write(
        "in/first.csv",
        "accountnumber,name\nA-0,a\nA-1,b\nA-2,c\nA-3,d\n",
    );
    let first = ws.pipeline(
        "first.toml",
        &odata_pipeline(
            &emu,
            "first.csv",
            "mode = \"upsert\"\nkey = \"accountnumber\"",
        ),
    );
    assert_eq!(run(&first).await.status, Status::Completed);
    let too_long = "x".repeat(200);
    ws.write(
        "in/second.csv",
        format!("accountnumber,name\nA-0,A\nA-1,{too_long}\nA-2,C\n"),
    );
    let report = sync_accounts(&emu, &ws, "").await;
    assert_eq!(
        (report.status, report.rows_rejected, report.rows_deleted),
        (Status::PartialSuccess, 1, 1),
        "{report}"
    );
    assert_eq!(
        numbers_and_names(&emu).await,
        [("A-0", "A"), ("A-1", "b"), ("A-2", "C")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    emu.stop().await;
}

/// Syncs `in/second.csv` into the accounts by account number (`more`: further target keys).
async fn sync_accounts(emu: &Running, ws: &Workspace, more: &str) -> ferry::run::RunReport {
    let target = format!("mode = \"sync\"\nkey = \"accountnumber\"\n{more}");
    let sync = ws.pipeline(
        "sync.toml",
        &odata_pipeline(emu, "second.csv", &target)
            .replace("name = \"crm\"", "name = \"crm-sync\""),
    );
    run(&sync).await
}

/// Every account as (accountnumber, name), sorted.
async fn numbers_and_names(emu: &Running) -> Vec<(String, String)> {
    odata_accounts(emu)
        .await
        .into_iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A throttling storm outlasts the sync's retries: the rows it could not write wait in quarantine,
/// and their records, which the source still has, stay in the service. Only the key the source no
/// longer has is deleted, once the storm has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odata_sync_in_a_storm_keeps_the_records_it_could_not_update() {
    let ws = Workspace::new();
    let data = ws.join("service.db");
    let calm = emulator_with(Faults::default(), Some(data.clone())).await;
    ws.write(
        "in/first.csv",
        "accountnumber,name\nA-0,a\nA-1,b\nA-2,c\nA-3,d\n",
    );
    let keyed = "mode = \"upsert\"\nkey = \"accountnumber\"";
    let first = ws.pipeline("first.toml", &odata_pipeline(&calm, "first.csv", keyed));
    assert_eq!(run(&first).await.status, Status::Completed);
    calm.stop().await;

    // Three throttled writes: the first try of the sync's one batch (one worker) and its two retries.
    let stormy = Faults {
        storm: 3,
        ..Faults::default()
    };
    let emu = emulator_with(stormy, Some(data)).await;
    ws.write("in/second.csv", "accountnumber,name\nA-0,A\nA-1,B\nA-2,C\n");
    let report = sync_accounts(&emu, &ws, "workers = 1").await;
    assert_eq!(
        (report.status, report.rows_rejected, report.rows_deleted),
        (Status::PartialSuccess, 3, 1),
        "{report}"
    );
    assert_eq!(
        numbers_and_names(&emu).await,
        [("A-0", "a"), ("A-1", "b"), ("A-2", "c")].map(|(k, v)| (k.to_string(), v.to_string())),
        "the old records stay until the quarantined rows are retried"
    );
    emu.stop().await;
}

/// GUIDs written in upper case come back from the service in lower case: the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odata_sync_by_upper_case_guids_deletes_nothing_it_wrote() {
    let emu = emulator().await;
    let ws = Workspace::new();
    let mut csv = String::from("accountid,name\n");
    let ids: Vec<String> = (0..20)
        .map(|_| uuid::Uuid::new_v4().to_string().to_uppercase())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{id},n{i}\n"));
    }
    ws.write("in/ids.csv", &csv);
    let p = ws.pipeline(
        "p.toml",
        &odata_pipeline(&emu, "ids.csv", "mode = \"sync\"\nkey = \"accountid\""),
    );
    for _ in 0..2 {
        let report = run(&p).await;
        assert_eq!(
            (report.status, report.rows_written, report.rows_deleted),
            (Status::Completed, 20, 0),
            "{report}"
        );
    }
    let mut want: Vec<String> = ids.iter().map(|i| i.to_lowercase()).collect();
    want.sort();
    let landed: Vec<String> = odata_accounts(&emu)
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(landed, want);
    emu.stop().await;
}

#[test]
fn legal_entity_on_a_service_that_is_not_fno_is_an_error_at_its_line() {
    let ws = Workspace::new();
    let path = ws.write(
        "p.toml",
        r#"name = "le"
[connections.crm]
url = "http://127.0.0.1:9/api/data/v9.2"
kind = "dataverse"
[sources.src]
path = "in/a.csv"
[target]
connection = "crm"
table = "accounts"
mode = "sync"
key = "accountnumber"
legal_entity = "usmf"
"#,
    );
    ws.write("in/a.csv", "accountnumber\nA-1\n");
    let err = ferry::spec::Pipeline::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("p.toml:12:16")
            && err.contains("legal_entity applies to Finance & Operations connections only"),
        "{err}"
    );
}

#[test]
fn incremental_sources_with_sync_or_truncate_are_refused() {
    for mode in ["sync", "truncate"] {
        let ws = Workspace::new();
        ws.write("in/a.csv", "id\n1\n");
        let path = ws.write(
            "p.toml",
            format!(
                r#"name = "inc"
[connections.db]
url = "sqlite://t.db"
[sources.src]
path = "in/*.csv"
incremental = true
[target]
connection = "db"
table = "t"
mode = "{mode}"
key = "id"
"#
            ),
        );
        let err = ferry::spec::Pipeline::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("p.toml:4:")
                && err.contains("would delete every row that earlier files loaded"),
            "{mode}: {err}"
        );
    }
}

/// 100 rows within one day over a timestamp column, read in 4 partitions: every row, once (the
/// ranges were cut on dates, and all but the rows at midnight were never read).
async fn partitioned_reads_over_timestamps_read_every_row(server: Server) {
    let db = TestDb::new(server).await;
    let types = match server {
        Server::Postgres => ["timestamptz", "timestamp"],
        Server::Mysql => ["datetime(6)", "timestamp(6)"],
    };
    for (t, ty) in types.iter().enumerate() {
        let table = format!("ts{t}");
        db.exec(&format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, at {ty} NULL)"
        ))
        .await;
        let values: Vec<String> = (1..=100)
            .map(|i| {
                format!(
                    "({i}, '2026-03-04 {:02}:{:02}:{:02}.{i:06}')",
                    i % 24,
                    i % 60,
                    (i * 7) % 60
                )
            })
            .collect();
        db.exec(&format!("INSERT INTO {table} VALUES {}", values.join(",")))
            .await;
        db.exec(&format!("INSERT INTO {table} VALUES (101, NULL)"))
            .await;
        let ws = Workspace::new();
        let p = ws.pipeline(
            "p.toml",
            &format!(
                r#"name = "ts"
[connections.db]
url = "{}"
[sources.s]
connection = "db"
table = "{table}"
partitions = 4
partition_column = "at"
[target]
path = "out/ts.parquet"
mode = "truncate"
"#,
                db.url()
            ),
        );
        let report = run(&p).await;
        assert_eq!(
            (report.status, report.rows_written),
            (Status::Completed, 101),
            "{server:?} {ty}: {report}"
        );
        assert_eq!(
            ferry_tests::datafusion_rows(
                &[("t", &ws.join("out/ts.parquet"))],
                "SELECT count(DISTINCT id) FROM t"
            )
            .await,
            rows(&[&["101"]]),
            "{server:?} {ty}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_partitioned_reads_over_timestamps_read_every_row() {
    partitioned_reads_over_timestamps_read_every_row(Server::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_partitioned_reads_over_timestamps_read_every_row() {
    partitioned_reads_over_timestamps_read_every_row(Server::Mysql).await;
}

/// The quarantine's Excel round trip keeps keys, timestamps and `_ferry_`-named columns exactly:
/// a BIGINT key went through a double (1234567890123456789 came back ...768, and the retry upserted
/// another row), sub-seconds were cut, and a user's `_ferry_note` column was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_excel_round_trip_keeps_every_value_exactly() {
    let ws = Workspace::new();
    rusqlite::Connection::open(ws.join("db.sqlite"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT, _ferry_note TEXT, score INTEGER CHECK (score >= 0))",
        )
        .unwrap();
    ws.write(
        "in/src.csv",
        "id,at,_ferry_note,score\n1,2026-03-04 05:06:07.123456,kept,10\n1234567890123456789,2026-03-04 05:06:07.123456,kept,-1\n",
    );
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "exact"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "typed"
sql = "SELECT id, CAST(at AS TIMESTAMP) AS at, _ferry_note, score FROM src"
[target]
connection = "db"
table = "t"
mode = "upsert"
key = "id"
"#,
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::PartialSuccess, "{report}");
    let book = ferry::book::Book::open(&pipeline.state_dir, &pipeline.name)
        .await
        .unwrap();
    let rejected = book.rejected("t").await.unwrap();
    let exported = ws.join("rejected.xlsx");
    ferry::book::quarantine::export_xlsx(&rejected, &exported).unwrap();
    let (names, exported_rows) = ferry_tests::read_workbook(&exported);
    assert_eq!(
        &names[2..6],
        ["id", "at", "_ferry_note", "score"],
        "{names:?}"
    );
    assert_eq!(exported_rows[0][2], "1234567890123456789");
    assert!(
        exported_rows[0][3].contains("05:06:07.123456"),
        "{exported_rows:?}"
    );

    // Excel rounds a long number typed or kept as a number: a retry refuses to write that key.
    let mut rounded = exported_rows.clone();
    rounded[0][2] = "1234567890123456768".into();
    rounded[0][5] = "20".into();
    ferry_tests::write_workbook(&ws.join("rounded.xlsx"), &names, &rounded, &[5]);
    let refused = ferry::run::retry::retry(&pipeline, "t", Some(&ws.join("rounded.xlsx")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "row 2: key column \"id\" reads 1234567890123456768, but the quarantined row"
        ),
        "{refused}"
    );

    // Corrected as a person would (the score), saved, retried: lands under its own key, exactly.
    let mut corrected = exported_rows.clone();
    corrected[0][5] = "20".into();
    ferry_tests::write_workbook(&ws.join("corrected.xlsx"), &names, &corrected, &[5]);
    let retried = ferry::run::retry::retry(&pipeline, "t", Some(&ws.join("corrected.xlsx")))
        .await
        .unwrap();
    assert_eq!(
        (retried.landed.len(), retried.failed.len()),
        (1, 0),
        "{retried:?}"
    );
    let landed = sqlite_rows(
        &ws.join("db.sqlite"),
        "SELECT id, at, _ferry_note, score FROM t",
    );
    assert_eq!(landed.len(), 2, "{landed:?}");
    assert_eq!(landed[1][0], "1234567890123456789", "{landed:?}");
    assert!(landed[1][1].contains("05:06:07.123456"), "{landed:?}");
    assert_eq!(landed[1][2], "kept", "{landed:?}");
    assert_eq!(landed[1][3], "20");
}

/// `state.validated` has the seed's meaning: the run finished and every validation check passed (the
/// target's checks before writing, and every row landed), not merely "completed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_validated_means_every_check_passed() {
    let ws = Workspace::new();
    ws.write("in/src.csv", "id,name\n1,a\n2,b\n");
    let pipeline = |validate: bool| {
        format!(
            r#"name = "v"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "t"
mode = "upsert"
key = "id"
create = true
[run]
validate = {validate}
"#
        )
    };
    for (validate, want) in [(false, "false"), (true, "true")] {
        let p = ws.pipeline("p.toml", &pipeline(validate));
        assert_eq!(run(&p).await.status, Status::Completed);
        let (_, state) =
            ferry_tests::read_delta(&ws.join(".ferry/state"), "SELECT validated FROM t").await;
        assert_eq!(state, rows(&[&[want]]), "validate = {validate}");
    }
}

/// Dates and timestamps Excel cannot hold as dates (before 1900-03-01, where its calendar has a
/// fictitious 1900-02-29) go to the quarantine workbook as exact text: before, a date of 1850 made
/// the export fail, and a read of 1900-01-01 came back a day early.
#[test]
fn old_dates_reach_the_quarantine_workbook_exactly() {
    use arrow::array::{Date32Array, RecordBatch, TimestampMicrosecondArray};
    let ws = Workspace::new();
    let days = |y, m, d| {
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    let rows = RecordBatch::try_from_iter([
        (
            "born",
            std::sync::Arc::new(Date32Array::from(vec![days(1850, 6, 1), days(1900, 1, 1)])) as _,
        ),
        (
            "at",
            std::sync::Arc::new(TimestampMicrosecondArray::from(vec![
                -3_786_825_600_000_000, // 1850-01-01T00:00:00
                0,
            ])) as _,
        ),
    ])
    .unwrap();
    let rejected = ferry::book::quarantine::Rejected {
        schema: rows.schema(),
        rows,
        ids: vec!["a".into(), "b".into()],
        errors: vec!["e".into(), "e".into()],
        causes: vec!["other".into(), "other".into()],
    };
    let file = ws.join("old.xlsx");
    ferry::book::quarantine::export_xlsx(&rejected, &file).unwrap();
    let (_, cells) = ferry_tests::read_workbook(&file);
    assert_eq!(cells[0][2], "1850-06-01", "{cells:?}");
    assert_eq!(cells[1][2], "1900-01-01", "{cells:?}");
    assert!(cells[0][3].starts_with("1850-01-01"), "{cells:?}");
}
