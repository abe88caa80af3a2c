//! File targets: replaced whole and atomically; a failed run leaves the previous file as it was.

use ferry::run::Status;
use ferry_tests::{Workspace, datafusion_rows, parquet_rows, rows, run};

fn pipeline_toml(target: &str) -> String {
    format!(
        r#"name = "f"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "out"
sql = "SELECT id, 100 / score AS inv FROM src"
[target]
{target}
mode = "truncate"
batch_size = 1
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_csv_targets_are_replaced_on_each_run() {
    for (target, file) in [
        ("path = \"out/r.parquet\"", "out/r.parquet"),
        ("path = \"out/r.csv\"", "out/r.csv"),
    ] {
        let ws = Workspace::new();
        ws.write("in/src.csv", "id,score\n1,10\n2,20\n");
        let p = ws.pipeline("p.toml", &pipeline_toml(target));
        assert_eq!(run(&p).await.status, Status::Completed);
        ws.write("in/src.csv", "id,score\n3,50\n");
        assert_eq!(run(&p).await.status, Status::Completed);
        let got = datafusion_rows(&[("t", &ws.join(file))], "SELECT * FROM t").await;
        assert_eq!(got, rows(&[&["3", "2"]]), "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_leaves_the_previous_file() {
    let ws = Workspace::new();
    ws.write("in/src.csv", "id,score\n1,10\n2,20\n");
    let p = ws.pipeline("p.toml", &pipeline_toml("path = \"out/r.parquet\""));
    assert_eq!(run(&p).await.status, Status::Completed);
    // Division by zero fails the step midway.
    ws.write("in/src.csv", "id,score\n3,10\n4,0\n");
    let failed = run(&p).await;
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
        parquet_rows(&ws.join("out/r.parquet")).await,
        rows(&[&["1", "10"], &["2", "5"]])
    );
    assert!(!ws.join("out/.r.parquet.ferry-partial").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_target_overwrites_with_truncate_and_appends_with_insert() {
    let ws = Workspace::new();
    ws.write("in/src.csv", "id,score\n1,10\n2,20\n");
    let over = ws.pipeline(
        "o.toml",
        &pipeline_toml("path = \"lake/t/\"\nformat = \"delta\""),
    );
    assert_eq!(run(&over).await.status, Status::Completed);
    assert_eq!(run(&over).await.status, Status::Completed);
    let append = ws.pipeline(
        "a.toml",
        &pipeline_toml("path = \"lake/t/\"\nformat = \"delta\"")
            .replace("mode = \"truncate\"", "mode = \"insert\""),
    );
    assert_eq!(run(&append).await.status, Status::Completed);

    let ctx = datafusion::prelude::SessionContext::new();
    let source = ferry_connectors::files::source::FileSource::new(
        ws.join("lake/t").display().to_string(),
        ferry_connectors::files::FileFormat::Delta,
    );
    ferry_connectors::files::source::register(&ctx, "t", &source)
        .await
        .unwrap();
    let batches = ctx
        .sql("SELECT * FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        ferry_tests::batch_rows(&batches),
        rows(&[&["1", "10"], &["1", "10"], &["2", "5"], &["2", "5"]])
    );
}

#[tokio::test]
async fn file_targets_refuse_keyed_modes_with_a_way_out() {
    let ws = Workspace::new();
    ws.write("in/src.csv", "id,score\n1,10\n");
    let text = pipeline_toml("path = \"out/r.parquet\"\nkey = \"id\"")
        .replace("mode = \"truncate\"", "mode = \"upsert\"");
    let path = ws.write("p.toml", &text);
    // Refused when the file is read, at the mode line, before anything runs.
    let err = ferry::spec::Pipeline::load(&path).unwrap_err().to_string();
    let line = text.lines().position(|l| l.starts_with("mode =")).unwrap() + 1;
    assert!(
        err.contains(&format!(
            "p.toml:{line}:8: a Parquet or CSV file target takes mode \"truncate\", not \"upsert\""
        )),
        "{err}"
    );
    assert!(
        err.contains("change the mode, or write to a database"),
        "{err}"
    );
}
