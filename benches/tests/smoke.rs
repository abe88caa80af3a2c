//! The harness's smoke test, run by CI: a tiny dataset and a tiny grid, seconds long. It checks that
//! the harness runs and writes what it promises (CSV, Delta table, chart, the tuner's pick), never a
//! speed.

use std::process::Command;

#[test]
fn a_tiny_sweep_writes_its_csv_delta_table_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let bench = env!("CARGO_BIN_EXE_ferry-bench");
    let data = dir.path().join("data");
    let status = Command::new(bench)
        .args(["data", "--rows", "3000", "--files", "2", "--out"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"name = "smoke"
[sources.orders]
path = "{}/orders/*.parquet"
[target]
path = "out/orders.parquet"
mode = "truncate"
"#,
            data.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("sweep");
    let output = Command::new(bench)
        .args(["sweep"])
        .arg(&pipeline)
        .args([
            "--workers",
            "1,2",
            "--batch-size",
            "500,1000",
            "--repeat",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("best within budget: workers = "),
        "{stdout}"
    );

    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(lines[0].starts_with("workers,batch_size,rate,repeat,rows,seconds,rows_per_s,p50_ms"));
    // Every point wrote every row.
    for line in &lines[1..] {
        assert_eq!(line.split(',').nth(4), Some("3000"), "{line}");
    }
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.matches("<polyline").count() == 2,
        "{svg}"
    );
    assert!(
        out.join("sweep/_delta_log/00000000000000000000.json")
            .exists()
    );
}
