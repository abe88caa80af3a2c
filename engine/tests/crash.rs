//! Crash safety: a `ferry run` killed with SIGKILL at many moments, then run again, leaves the target
//! exactly as if it had never died, and the history tells the story.
//!
//! The moment is chosen with FERRY_PAUSE_AT (connectors/src/failpoint.rs): the process stops there, the
//! test sees it say so on stderr and kills it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const ROWS: usize = 600;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

fn source_csv() -> String {
    let mut csv = String::from("id,name,score\n");
    for i in 1..=ROWS {
        csv.push_str(&format!("{i},name {i},{}\n", i * 3));
    }
    csv
}

fn expected() -> Vec<(i64, String, i64)> {
    (1..=ROWS as i64)
        .map(|i| (i, format!("name {i}"), i * 3))
        .collect()
}

/// A folder with the source, a target table holding rows the run must change or remove, the pipeline.
fn setup(mode: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.csv"), source_csv()).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
    db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER)")
        .unwrap();
    if mode != "insert" {
        // Old values for some keys, and keys the source does not have.
        db.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
             INSERT INTO t SELECT i * 10, 'old', -1 FROM n;
             INSERT INTO t VALUES (5001, 'gone', 0), (5002, 'gone', 0);",
        )
        .unwrap();
    }
    let pipeline = format!(
        "name = \"crash\"\n[connections.db]\nurl = \"sqlite://db.sqlite\"\n[sources.src]\npath = \"src.csv\"\n\
         [target]\nconnection = \"db\"\ntable = \"t\"\nmode = \"{mode}\"\nkey = [\"id\"]\nbatch_size = 25\nworkers = 2\n"
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    dir
}

/// Starts `ferry run`, waits until it pauses at `point`, and kills it with SIGKILL.
fn kill_at(dir: &Path, point: &str) {
    let mut child = ferry()
        .args(["run", "p.toml"])
        .current_dir(dir)
        .env("FERRY_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.starts_with("ferry: paused at") {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    panic!(
        "ferry never reached {point} (exit {status:?}):\n{}",
        seen.join("\n")
    );
}

fn target_rows(dir: &Path) -> Vec<(i64, String, i64)> {
    let db = rusqlite::Connection::open(dir.join("db.sqlite")).unwrap();
    let mut stmt = db
        .prepare("SELECT id, name, score FROM t ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// (status, attempt) of every run, oldest first.
fn history(dir: &Path) -> Vec<(String, i64, String)> {
    let out = ferry()
        .args(["history", "p.toml", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut runs: Vec<(String, i64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["status"].as_str().unwrap().to_string(),
                v["attempt"].as_i64().unwrap(),
                v["run_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    runs.reverse();
    runs
}

/// Kills a run at `point`, runs again, and checks the target and the history.
fn crash_and_recover(mode: &str, point: &str, resumed: bool) {
    let dir = setup(mode);
    kill_at(dir.path(), point);
    let out = ferry()
        .args(["run", "p.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{mode} after {point}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = target_rows(dir.path());
    let want: Vec<(i64, String, i64)> = match mode {
        // Upsert keeps the rows the source does not have.
        "upsert" => {
            let mut w = expected();
            w.extend([(5001, "gone".to_string(), 0), (5002, "gone".to_string(), 0)]);
            w
        }
        _ => expected(),
    };
    assert_eq!(rows.len(), want.len(), "{mode} after {point}: row count");
    assert_eq!(rows, want, "{mode} after {point}");
    let runs = history(dir.path());
    let last = runs.last().unwrap();
    assert_eq!(last.0, "Completed", "{mode} after {point}: {runs:?}");
    if resumed {
        assert_eq!(
            runs.len(),
            1,
            "{mode} after {point}: the killed run is resumed, not a new one: {runs:?}"
        );
        assert_eq!(last.1, 2, "{mode} after {point}: second attempt: {runs:?}");
        assert!(stdout.contains("attempt 2, resumed"), "{stdout}");
    }
}

#[test]
fn killed_before_anything_was_recorded() {
    for mode in ["insert", "upsert", "truncate", "sync"] {
        crash_and_recover(mode, "run_recorded", true);
    }
}

#[test]
fn killed_before_the_first_batch() {
    for mode in ["insert", "upsert", "truncate", "sync"] {
        crash_and_recover(mode, "before_first_batch", true);
    }
}

#[test]
fn killed_in_the_middle_of_a_batch() {
    for mode in ["insert", "upsert", "truncate", "sync"] {
        crash_and_recover(mode, "sink_mid_batch:5", true);
    }
}

#[test]
fn killed_between_the_targets_commit_and_the_logs() {
    for mode in ["insert", "upsert", "truncate", "sync"] {
        crash_and_recover(mode, "batch_written:7", true);
    }
}

#[test]
fn killed_after_the_log_was_committed() {
    for mode in ["upsert", "truncate", "sync"] {
        crash_and_recover(mode, "log_flushed:1", true);
    }
}

#[test]
fn killed_during_the_final_step_of_sync_and_truncate() {
    for mode in ["truncate", "sync"] {
        crash_and_recover(mode, "before_finish", true);
        crash_and_recover(mode, "sink_finish_before_commit", true);
        crash_and_recover(mode, "sink_finished", true);
    }
}

#[test]
fn a_second_run_at_the_same_time_stops_at_once() {
    let dir = setup("upsert");
    let mut first = ferry()
        .args(["run", "p.toml"])
        .current_dir(dir.path())
        .env("FERRY_PAUSE_AT", "before_first_batch")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("ferry: paused") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the first run ended early"
        );
    }
    let second = ferry()
        .args(["run", "p.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    // Busy, not a wrong pipeline: the same command later succeeds (sysexits' EX_TEMPFAIL).
    assert_eq!(second.status.code(), Some(75), "{err}");
    assert!(
        err.contains("pipeline \"crash\" is already running"),
        "{err}"
    );
    // The killed run's lock is taken over; the run completes.
    let third = ferry()
        .args(["run", "p.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        third.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
}
