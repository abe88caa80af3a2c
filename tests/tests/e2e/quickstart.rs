//! The quickstart, run as a user runs it, checked against the same SQL computed directly in DataFusion.

use ferry::run::Status;
use ferry::spec::Pipeline;
use ferry_tests::{Workspace, batch_rows, run, sqlite_rows};

const SUMMARY_SQL: &str = "
SELECT c.customer_id, c.name, r.region, count(*) AS orders, sum(p.amount) AS total, max(p.order_date) AS last_order
FROM (SELECT order_id, customer_id, amount, order_date FROM orders WHERE paid AND status <> 'cancelled') p
JOIN customers c ON c.customer_id = p.customer_id
JOIN regions r ON r.country_code = c.country_code
GROUP BY c.customer_id, c.name, r.region";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_lands_exactly_what_datafusion_computes() {
    let ws = Workspace::new();
    ws.copy_from_repo("pipelines");
    let _ = std::fs::remove_dir_all(ws.join("pipelines/out"));
    let pipeline = Pipeline::load(&ws.join("pipelines/quickstart.toml")).expect("valid quickstart");
    let report = run(&pipeline).await;
    assert_eq!(report.status, Status::Completed, "{report}");

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
        let source = ferry_connectors::files::source::FileSource {
            location: ws.join("pipelines/data").join(file).display().to_string(),
            format,
            header: true,
            delimiter: b',',
            sheet: None,
        };
        ferry_connectors::files::source::register(&ctx, name, &source)
            .await
            .expect("register");
    }
    let expected = batch_rows(&ctx.sql(SUMMARY_SQL).await.unwrap().collect().await.unwrap());
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
