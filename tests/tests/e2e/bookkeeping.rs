//! The bookkeeping tables as another reader sees them, quarantine and its Excel round trip, resume and
//! the guards around it (lock, damaged tables).

use arrow::datatypes::DataType;
use ferry::book::Book;
use ferry::book::quarantine::{ID_HEADER, export_xlsx};
use ferry::run::Status;
use ferry_tests::{Workspace, read_delta, read_workbook, rows, run, sqlite_rows, write_workbook};

const PIPELINE: &str = r#"name = "accounts"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "in/src.csv"
[target]
connection = "db"
table = "t"
mode = "upsert"
key = ["id"]
batch_size = 4
workers = 2
"#;

fn setup(ws: &Workspace, csv: &str) {
    let conn = rusqlite::Connection::open(ws.join("db.sqlite")).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER CHECK (score >= 0))",
    )
    .unwrap();
    ws.write("in/src.csv", csv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_quarantined_corrected_in_excel_and_retried() {
    let ws = Workspace::new();
    setup(
        &ws,
        "id,name,score\n1,a,10\n2,,20\n3,c,30\n4,d,-1\n5,e,50\n6,f,60\n",
    );
    let pipeline = ws.pipeline("p.toml", PIPELINE);
    let report = run(&pipeline).await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 4, 2),
        "{report}"
    );
    assert_eq!(
        sqlite_rows(&ws.join("db.sqlite"), "SELECT id, name, score FROM t"),
        rows(&[
            &["1", "a", "10"],
            &["3", "c", "30"],
            &["5", "e", "50"],
            &["6", "f", "60"]
        ])
    );

    // Exactly the bad rows, with the database's message and a cause.
    let (_, quarantined) = read_delta(
        &ws.join(".ferry/quarantine/t"),
        "SELECT id, name, score, _ferry_error, _ferry_cause, _ferry_resolved FROM t",
    )
    .await;
    assert_eq!(
        quarantined,
        rows(&[
            &[
                "2",
                "NULL",
                "20",
                "NOT NULL constraint failed: t.name",
                "a required column is empty",
                "false"
            ],
            &[
                "4",
                "d",
                "-1",
                "CHECK constraint failed: score >= 0",
                "a check constraint rejected a value",
                "false"
            ],
        ])
    );
    let (_, logged) = read_delta(
        &ws.join(".ferry/log"),
        "SELECT sum(rows_written), sum(rows_rejected), max(severity), max(quarantine_table) FROM t",
    )
    .await;
    assert_eq!(logged, rows(&[&["4", "2", "2", "quarantine/t"]]));

    // Export, correct in the workbook as a person would, retry from it.
    let book = Book::open(&pipeline.state_dir, &pipeline.name)
        .await
        .unwrap();
    let rejected = book.rejected("t").await.unwrap();
    let exported = ws.join("rejected.xlsx");
    export_xlsx(&rejected, &exported).unwrap();
    let (names, exported_rows) = read_workbook(&exported);
    assert_eq!(
        names,
        vec!["error", "cause", "id", "name", "score", ID_HEADER]
    );
    assert_eq!(exported_rows.len(), 2);
    let mut corrected = exported_rows.clone();
    for row in &mut corrected {
        match row[2].as_str() {
            "2" => row[3] = "b (fixed)".into(),
            "4" => row[4] = "40".into(),
            _ => {}
        }
    }
    write_workbook(&ws.join("corrected.xlsx"), &names, &corrected, &[2, 4]);
    let retried = ferry::run::retry::retry(&pipeline, "t", Some(&ws.join("corrected.xlsx")))
        .await
        .unwrap();
    assert_eq!(
        (retried.landed.len(), retried.failed.len()),
        (2, 0),
        "{retried:?}"
    );
    assert_eq!(
        sqlite_rows(
            &ws.join("db.sqlite"),
            "SELECT id, name, score FROM t WHERE id IN (2, 4)"
        ),
        rows(&[&["2", "b (fixed)", "20"], &["4", "d", "40"]])
    );
    let (_, resolved) = read_delta(
        &ws.join(".ferry/quarantine/t"),
        "SELECT id, _ferry_resolved FROM t",
    )
    .await;
    assert_eq!(resolved, rows(&[&["2", "true"], &["4", "true"]]));

    // A later run that rejects other rows adds them; the earlier ones stay.
    ws.write("in/src.csv", "id,name,score\n7,,70\n8,h,80\n");
    let second = run(&pipeline).await;
    assert_eq!(second.status, Status::PartialSuccess, "{second}");
    let (_, all) = read_delta(
        &ws.join(".ferry/quarantine/t"),
        "SELECT id, _ferry_resolved FROM t",
    )
    .await;
    assert_eq!(
        all,
        rows(&[&["2", "true"], &["4", "true"], &["7", "false"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_are_delta_tables_with_the_documented_columns() {
    let ws = Workspace::new();
    setup(&ws, "id,name,score\n1,a,10\n2,,20\n");
    let pipeline = ws.pipeline("p.toml", PIPELINE);
    assert_eq!(run(&pipeline).await.status, Status::PartialSuccess);
    let ts = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
    let expect = |schema: &arrow::datatypes::SchemaRef, wanted: &[(&str, DataType)]| {
        for (name, t) in wanted {
            let field = schema
                .field_with_name(name)
                .unwrap_or_else(|_| panic!("no column {name} in {schema:?}"));
            let actual = match field.data_type() {
                DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                other => other.clone(),
            };
            assert_eq!(&actual, t, "column {name}");
        }
    };
    let (log, _) = read_delta(&ws.join(".ferry/log"), "SELECT * FROM t").await;
    expect(
        &log,
        &[
            ("table_name", DataType::Utf8),
            ("partition_id", DataType::Int32),
            ("batch_id", DataType::Int32),
            ("batch_size", DataType::Int32),
            ("write_time", DataType::Float32),
            ("time", ts.clone()),
            ("error", DataType::Utf8),
            ("severity", DataType::Int32),
            ("cause", DataType::Utf8),
            ("quarantine_table", DataType::Utf8),
            ("pipeline", DataType::Utf8),
            ("run_id", DataType::Utf8),
            ("attempt", DataType::Int32),
            ("rows_written", DataType::Int64),
        ],
    );
    let (state, state_rows) = read_delta(
        &ws.join(".ferry/state"),
        "SELECT id, table_name, records, validated, workers, status FROM t",
    )
    .await;
    expect(
        &state,
        &[
            ("id", DataType::Int32),
            ("table_name", DataType::Utf8),
            ("records", DataType::Int64),
            ("validated", DataType::Boolean),
            ("workers", DataType::Int32),
            ("status", DataType::Utf8),
        ],
    );
    assert_eq!(
        state_rows,
        rows(&[&["1", "t", "2", "false", "2", "Partial Success"]])
    );
    let (history, runs) = read_delta(
        &ws.join(".ferry/history"),
        "SELECT status, rows_read, rows_written, rows_rejected, attempt FROM t",
    )
    .await;
    expect(
        &history,
        &[
            ("status", DataType::Utf8),
            ("rows_read", DataType::Int64),
            ("attempt", DataType::Int32),
        ],
    );
    assert_eq!(runs, rows(&[&["Partial Success", "2", "1", "1", "1"]]));
    let (full_history, _) = read_delta(&ws.join(".ferry/history"), "SELECT * FROM t").await;
    expect(
        &full_history,
        &[
            ("run_id", DataType::Utf8),
            ("pipeline", DataType::Utf8),
            ("start", ts.clone()),
            ("end", ts.clone()),
            ("duration", DataType::Float64),
            ("rows_per_second", DataType::Float64),
            ("error", DataType::Utf8),
        ],
    );
    let (quarantine, _) = read_delta(&ws.join(".ferry/quarantine/t"), "SELECT * FROM t").await;
    expect(
        &quarantine,
        &[
            ("id", DataType::Int64),
            ("name", DataType::Utf8),
            ("_ferry_run_id", DataType::Utf8),
            ("_ferry_partition", DataType::Int32),
            ("_ferry_batch", DataType::Int32),
            ("_ferry_row", DataType::Int64),
            ("_ferry_error", DataType::Utf8),
            ("_ferry_cause", DataType::Utf8),
            ("_ferry_severity", DataType::Int32),
            ("_ferry_time", ts),
            ("_ferry_resolved", DataType::Boolean),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_bookkeeping_stops_the_run_instead_of_starting_over() {
    let ws = Workspace::new();
    setup(&ws, "id,name,score\n1,a,10\n");
    let pipeline = ws.pipeline("p.toml", PIPELINE);
    assert_eq!(run(&pipeline).await.status, Status::Completed);
    let log_dir = ws.join(".ferry/history/_delta_log");
    for entry in std::fs::read_dir(&log_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::write(&path, "{ this is not a delta log").unwrap();
        }
    }
    let err = ferry::run::run(&pipeline, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the bookkeeping table") && err.contains("cannot be read"),
        "{err}"
    );
    assert!(err.contains("Ferry will not guess"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_run_many_times_keeps_its_tables_compact() {
    let ws = Workspace::new();
    setup(&ws, "id,name,score\n1,a,10\n");
    let pipeline = ws.pipeline("p.toml", PIPELINE);
    for _ in 0..70 {
        assert_eq!(run(&pipeline).await.status, Status::Completed);
    }
    // delta-rs writes a checkpoint every 100 commits, so a reader starts there, not at commit 0.
    let checkpoints = std::fs::read_dir(ws.join(".ferry/history/_delta_log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".checkpoint.parquet")
        })
        .count();
    assert!(
        checkpoints >= 1,
        "history has no Delta checkpoint after 140 commits"
    );
    // One small file per run is compacted once there are many.
    for table in ["log", "history", "state"] {
        let t = deltalake::open_table(
            deltalake::ensure_table_uri(ws.join(".ferry").join(table).to_str().unwrap()).unwrap(),
        )
        .await
        .unwrap();
        let files = t.get_file_uris().unwrap().count();
        assert!(files < 20, "{table} keeps {files} files after 70 runs");
    }
    let (_, runs) = read_delta(
        &ws.join(".ferry/history"),
        "SELECT count(*), count(DISTINCT run_id) FROM t",
    )
    .await;
    assert_eq!(runs, rows(&[&["70", "70"]]));
}
