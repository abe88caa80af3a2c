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
        "name = \"x\"\n[sources.orders]\npath = \"data/none/*.parquet\"\n[target]\npath = \"o.csv\"\nmode = \"truncate\"\n",
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
