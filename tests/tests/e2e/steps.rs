//! Multi-step pipelines: steps as views, `@resultN` references, and SQL errors placed on their line.

use ferry::run::Status;
use ferry_tests::{Workspace, parquet_rows, rows, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_references_name_earlier_steps() {
    let ws = Workspace::new();
    ws.write(
        "data/sales.csv",
        "id,region,amount\n1,north,10\n2,south,20\n3,north,30\n4,east,5\n",
    );
    let pipeline = ws.pipeline(
        "p.toml",
        r#"
name = "regions"
[sources.sales]
path = "data/sales.csv"

[[steps]]
name = "big"
sql = "SELECT * FROM sales WHERE amount >= 10"

[[steps]]
name = "per_region"
sql = "SELECT region, sum(amount) AS total FROM @result1 GROUP BY region"

[[steps]]
name = "labelled"
sql = "SELECT r.region, r.total, (SELECT count(*) FROM @result1) AS big_sales FROM @result2 r"

[target]
path = "out/regions.parquet"
mode = "truncate"
"#,
    );
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    assert_eq!(
        parquet_rows(&ws.join("out/regions.parquet")).await,
        rows(&[&["north", "40", "3"], &["south", "20", "3"]])
    );
}

#[tokio::test]
async fn unknown_table_in_sql_names_the_step_line_and_the_tables_available() {
    let ws = Workspace::new();
    ws.write("data/sales.csv", "id,amount\n1,10\n");
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "bad-sql"
[sources.sales]
path = "data/sales.csv"

[[steps]]
name = "totals"
sql = """
SELECT s.id, c.name
FROM sales s
JOIN custmers c ON c.id = s.id
"""

[target]
path = "out/x.parquet"
mode = "truncate"
"#,
    );
    let err = match ferry::plan::plan(&pipeline).await {
        Ok(_) => panic!("the plan should fail"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("p.toml:10:1: step \"totals\""), "{err}");
    assert!(err.contains("custmers"), "{err}");
    assert!(err.contains("tables available here: sales"), "{err}");
}

#[tokio::test]
async fn missing_source_file_names_the_source_and_its_line() {
    let ws = Workspace::new();
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "x"
[sources.orders]
path = "data/none/*.parquet"
[target]
path = "o.csv"
mode = "truncate"
"#,
    );
    let err = match ferry::plan::plan(&pipeline).await {
        Ok(_) => panic!("the plan should fail"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("p.toml:2:10: source \"orders\": no file matches"),
        "{err}"
    );
    assert!(err.contains("data/none/*.parquet"), "{err}");
}

/// Steps are queries. A step that would write a file, define a table over any local path or change
/// the session is refused at its line: a pipeline file must not read or write what it does not
/// name as a source or target.
#[tokio::test]
async fn steps_that_are_not_queries_are_refused() {
    let ws = Workspace::new();
    ws.write("data/sales.csv", "id,amount\n1,10\n");
    let outside = ws.join("outside.csv");
    let statements = [
        format!("COPY (SELECT 1 AS x) TO '{}'", outside.display()),
        format!(
            "CREATE EXTERNAL TABLE secrets STORED AS CSV LOCATION '{}'",
            ws.join("data/sales.csv").display()
        ),
        "INSERT INTO sales VALUES (2, 20)".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
    ];
    for sql in statements {
        let pipeline = ws.pipeline(
            "p.toml",
            &format!(
                r#"name = "not-a-query"
[sources.sales]
path = "data/sales.csv"

[[steps]]
name = "sneaky"
sql = "{}"

[target]
path = "out/x.parquet"
mode = "truncate"
"#,
                sql.replace('\\', "\\\\").replace('"', "\\\"")
            ),
        );
        let err = match ferry::plan::plan(&pipeline).await {
            Ok(_) => panic!("{sql}: the plan should fail"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("p.toml:7:") && err.contains("step \"sneaky\""),
            "{sql}: {err}"
        );
        assert!(err.contains("a step is a query"), "{sql}: {err}");
        assert!(!outside.exists(), "{sql}: a file was written");
    }
}
