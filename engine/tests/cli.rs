//! The `ferry` binary as a script sees it: exit codes, the summary, errors on stderr.

use std::path::Path;
use std::process::{Command, Output};

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ferry runs")
}

fn show(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.csv"), "id,name\n1,a\n2,b\n3,c\n").unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        r#"name = "cli"
[connections.db]
url = "sqlite://out/db.sqlite"
[sources.src]
path = "src.csv"
[[steps]]
name = "all"
sql = "SELECT * FROM src"
[target]
connection = "db"
table = "t"
mode = "upsert"
key = "id"
create = true
"#,
    )
    .unwrap();
    dir
}

#[test]
fn run_prints_a_summary_and_exits_zero() {
    let dir = setup();
    let out = ferry(dir.path(), &["run", "p.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cli: Completed"), "{}", show(&out));
    assert!(stdout.contains("rows written  3"), "{}", show(&out));
    assert!(dir.path().join("out/db.sqlite").exists());
}

#[test]
fn validate_reports_problems_with_exit_code_two_and_writes_nothing() {
    let dir = setup();
    let text = std::fs::read_to_string(dir.path().join("p.toml")).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        text.replace("mode = \"upsert\"", "mode = \"upsrt\""),
    )
    .unwrap();
    let out = ferry(dir.path(), &["validate", "p.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("p.toml:12:8: unknown write mode \"upsrt\""),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains("did you mean mode = \"upsert\"?"),
        "{}",
        show(&out)
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn validate_accepts_a_good_pipeline_without_writing() {
    let dir = setup();
    let out = ferry(dir.path(), &["validate", "p.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("p.toml is valid"),
        "{}",
        show(&out)
    );
    assert!(!dir.path().join("out/db.sqlite").exists());
}

#[test]
fn preview_shows_the_rows_of_a_step() {
    let dir = setup();
    let out = ferry(
        dir.path(),
        &["preview", "p.toml", "--step", "all", "--limit", "2"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| id | name |"), "{}", show(&out));
    assert!(stdout.contains("all: first 2 rows"), "{}", show(&out));
    let out = ferry(dir.path(), &["preview", "p.toml", "--step", "al"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean --step all?"));
}

#[test]
fn a_failed_run_exits_one_and_says_why() {
    let dir = setup();
    let text = std::fs::read_to_string(dir.path().join("p.toml")).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        text.replace(
            "SELECT * FROM src",
            "SELECT id, name, 10 / (id - 2) AS x FROM src",
        ),
    )
    .unwrap();
    let out = ferry(dir.path(), &["run", "p.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cli: Failed"), "{}", show(&out));
    assert!(stdout.contains("Divide by zero"), "{}", show(&out));
}

#[test]
fn rejected_rows_exit_three_with_partial_success() {
    let dir = setup();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("out/db.sqlite")).unwrap();
    db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .unwrap();
    std::fs::write(dir.path().join("src.csv"), "id,name\n1,a\n2,\n3,c\n").unwrap();
    let out = ferry(dir.path(), &["run", "p.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cli: Partial Success"), "{}", show(&out));
    assert!(stdout.contains("rows rejected 1"), "{}", show(&out));
}

#[test]
fn reset_asks_for_yes_and_then_forgets_the_consumed_files() {
    let dir = setup();
    let text = std::fs::read_to_string(dir.path().join("p.toml")).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        text.replace(
            "path = \"src.csv\"",
            "path = \"src.csv\"\nincremental = true",
        ),
    )
    .unwrap();
    let first = ferry(dir.path(), &["run", "p.toml"]);
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("rows read     3"),
        "{}",
        show(&first)
    );
    let idle = ferry(dir.path(), &["run", "p.toml"]);
    assert!(
        String::from_utf8_lossy(&idle.stdout).contains("rows read     0"),
        "{}",
        show(&idle)
    );

    let refused = ferry(dir.path(), &["reset", "p.toml", "--checkpoints"]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("add --yes"),
        "{}",
        show(&refused)
    );

    let reset = ferry(dir.path(), &["reset", "p.toml", "--checkpoints", "--yes"]);
    assert_eq!(reset.status.code(), Some(0), "{}", show(&reset));
    assert!(
        String::from_utf8_lossy(&reset.stdout).contains("checkpoints: 1 rows deleted"),
        "{}",
        show(&reset)
    );
    let again = ferry(dir.path(), &["run", "p.toml"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("rows read     3"),
        "{}",
        show(&again)
    );
}

#[test]
fn log_and_history_show_the_runs() {
    let dir = setup();
    assert_eq!(ferry(dir.path(), &["run", "p.toml"]).status.code(), Some(0));
    let history = ferry(dir.path(), &["history", "p.toml"]);
    let text = String::from_utf8_lossy(&history.stdout);
    assert!(
        text.contains("| run_id") && text.contains("Completed"),
        "{}",
        show(&history)
    );
    let log = ferry(dir.path(), &["log", "p.toml", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let written: i64 = lines
        .iter()
        .map(|l| l["rows_written"].as_i64().unwrap())
        .sum();
    assert_eq!(written, 3, "{}", show(&log));
    assert!(lines.iter().all(|l| l["severity"] == 0), "{}", show(&log));
    let errors = ferry(dir.path(), &["log", "p.toml", "--errors"]);
    assert!(
        String::from_utf8_lossy(&errors.stdout).contains("(no rows)"),
        "{}",
        show(&errors)
    );
}

#[test]
fn help_teaches_with_an_example() {
    let out = ferry(Path::new("."), &["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ferry run pipelines/quickstart.toml"));
    assert!(stdout.contains("mode = \"upsert\""));
    assert!(stdout.contains("Exit codes"));
}

#[test]
fn a_target_that_does_not_answer_exits_75_unavailable_not_2() {
    let dir = setup();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(dir.path().join("p.toml")).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        text.replace(
            "sqlite://out/db.sqlite",
            &format!("postgres://postgres@127.0.0.1:{port}/nowhere"),
        )
        .replace("create = true\n", "create = true\n[run]\nmax_retries = 0\n"),
    )
    .unwrap();
    let out = ferry(dir.path(), &["run", "p.toml"]);
    assert_eq!(out.status.code(), Some(75), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("nothing answers at 127.0.0.1:{port}")),
        "{}",
        show(&out)
    );
}

/// `ferry connectors` prints the registry's own capabilities: one line per connector, its modes.
#[test]
fn connectors_lists_each_connector_with_its_modes() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(dir.path(), &["connectors"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (name, modes) in [
        ("PostgreSQL", "insert,upsert,truncate,sync"),
        ("MySQL", "insert,upsert,truncate,sync"),
        ("SQLite", "insert,upsert,truncate,sync"),
        ("OData", "insert,upsert,truncate,sync"),
        ("Delta table", "insert,truncate"),
        ("Parquet or CSV file", "truncate"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(modes)),
            "{name} {modes}: {}",
            show(&out)
        );
    }
    assert!(stdout.contains("postgres://"), "{}", show(&out));
}
