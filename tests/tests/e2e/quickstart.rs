//! The quickstart, run as a user runs it, checked against the same SQL computed directly in DataFusion.

use std::path::Path;

use ferry::run::Status;
use ferry::spec::Pipeline;
use ferry_tests::{Workspace, batch_rows, run, sqlite_rows};

const SUMMARY_SQL: &str = "
SELECT c.customer_id, c.name, r.region, count(*) AS orders, sum(p.amount) AS total, max(p.order_date) AS last_order
FROM (SELECT order_id, customer_id, amount, order_date FROM orders WHERE paid AND status <> 'cancelled') p
JOIN customers c ON c.customer_id = p.customer_id
JOIN regions r ON r.country_code = c.country_code
GROUP BY c.customer_id, c.name, r.region";

/// What the quickstart must land, computed by DataFusion straight from `pipelines`'s data files.
async fn datafusion_answer(pipelines: &Path) -> Vec<Vec<String>> {
    let ctx = datafusion::prelude::SessionContext::new();
    for (name, file, format) in [
        (
            "orders",
            "orders.parquet",
            ferry_connectors::files::FileFormat::Parquet,
        ),
        (
            "customers",
            "customers.csv",
            ferry_connectors::files::FileFormat::Csv,
        ),
        (
            "regions",
            "regions.xlsx",
            ferry_connectors::files::FileFormat::Xlsx,
        ),
    ] {
        let source = ferry_connectors::files::source::FileSource::new(
            pipelines.join("data").join(file).display().to_string(),
            format,
        );
        ferry_connectors::files::source::register(&ctx, name, &source)
            .await
            .expect("register");
    }
    batch_rows(&ctx.sql(SUMMARY_SQL).await.unwrap().collect().await.unwrap())
}

/// The README's first command (`cargo run -p ferry -- run pipelines/quickstart.toml`) as a user
/// types it: the `ferry` binary run from the repository's root. `.ci/fresh-clone.sh` runs that
/// command in a fresh clone and points FERRY_QUICKSTART_OUT at the clone's `pipelines` folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_first_command_lands_what_datafusion_computes() {
    let ws = Workspace::new();
    let pipelines = match std::env::var_os("FERRY_QUICKSTART_OUT") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            ws.copy_from_repo("pipelines");
            let _ = std::fs::remove_dir_all(ws.join("pipelines/out"));
            let out = ferry_tests::ferry_command()
                .args(["run", "pipelines/quickstart.toml"])
                .current_dir(ws.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ws.join("pipelines")
        }
    };
    let landed = sqlite_rows(
        &pipelines.join("out/warehouse.db"),
        "SELECT customer_id, name, region, orders, total, last_order FROM customer_summary",
    );
    assert_eq!(landed, datafusion_answer(&pipelines).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_lands_exactly_what_datafusion_computes() {
    let ws = Workspace::new();
    ws.copy_from_repo("pipelines");
    let _ = std::fs::remove_dir_all(ws.join("pipelines/out"));
    let pipeline = Pipeline::load(&ws.join("pipelines/quickstart.toml")).expect("valid quickstart");
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    let expected = datafusion_answer(&ws.join("pipelines")).await;
    let db = ws.join("pipelines/out/warehouse.db");
    let landed = sqlite_rows(
        &db,
        "SELECT customer_id, name, region, orders, total, last_order FROM customer_summary",
    );
    assert!(
        expected.len() > 100,
        "the quickstart should summarise many customers"
    );
    assert_eq!(landed, expected);
    assert_eq!(report.rows_written as usize, expected.len());
    // Rows read are what the sources gave (3,000 orders, 200 customers, 8 regions); the last
    // step's rows are its own figure.
    assert_eq!(
        (report.rows_read, report.rows_out),
        (3_208, expected.len() as u64),
        "{report}"
    );

    // Run again: upsert by customer_id leaves the same table, no duplicates.
    let again = run(&pipeline).await;
    assert_eq!(again.status, Status::Completed, "{again}");
    assert_eq!(
        sqlite_rows(
            &db,
            "SELECT customer_id, name, region, orders, total, last_order FROM customer_summary"
        ),
        expected
    );
}
