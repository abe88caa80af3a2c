//! The crash trial matrix: `ferry run` killed with SIGKILL at a named point (FERRY_PAUSE_AT,
//! connectors/src/failpoint.rs), then run again, on every target and mode. Each trial compares the
//! whole target with the rows expected and the quarantine with its rows: nothing lost, nothing
//! doubled, no row of the user's deleted that the source still has.
//!
//! `cargo test --workspace trials` runs a representative subset (every target and every mode at
//! least once, every pause point at least once); the whole matrix is
//! `cargo test --workspace trials -- --ignored`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use ferry_emulator::Running;
use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, sqlite_rows};
use futures::FutureExt;

/// Rows in the source: 24 batches of 25 over two workers.
const ROWS: i64 = 600;
/// A source row the SQL targets refuse (CHECK score >= 0): it must be quarantined exactly once.
const BAD_ID: i64 = 333;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Sqlite,
    Postgres,
    Mysql,
    Delta,
    Parquet,
    OData,
}

impl Target {
    const ALL: [Target; 6] = [
        Target::Sqlite,
        Target::Postgres,
        Target::Mysql,
        Target::Delta,
        Target::Parquet,
        Target::OData,
    ];

    fn modes(self) -> &'static [&'static str] {
        match self {
            Target::Delta => &["insert", "truncate"],
            Target::Parquet => &["truncate"],
            _ => &["insert", "upsert", "truncate", "sync"],
        }
    }

    /// Whether the target refuses the bad row (SQL CHECK constraints).
    fn refuses_bad_row(self) -> bool {
        matches!(self, Target::Sqlite | Target::Postgres | Target::Mysql)
    }

    /// Every point at which this target and mode can be killed.
    fn points(self, mode: &str) -> Vec<&'static str> {
        let mut points = vec![
            "run_recorded",
            "before_first_batch",
            "batch_written:7",
            "log_flushed:1",
            "before_finish",
            "sink_finished",
        ];
        if self.refuses_bad_row() {
            points.extend(["sink_mid_batch:5", "quarantine_flushed:1"]);
            if matches!(mode, "truncate" | "sync") {
                points.push("sink_finish_before_commit");
            }
        }
        if self == Target::OData && mode == "truncate" {
            points.push("truncate_deleted");
        }
        points
    }
}

fn ferry() -> Command {
    ferry_tests::ferry_command()
}

/// (id, name, score) of source row `i`.
fn source_row(i: i64) -> (i64, String, i64) {
    let score = if i == BAD_ID { -1 } else { i * 3 };
    (i, format!("name {i}"), score)
}

/// What the target must hold after a run of `mode` that ended well, as sorted text rows.
fn expected(target: Target, mode: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<(i64, String, i64)> = (1..=ROWS)
        .map(source_row)
        .filter(|(i, _, _)| !(target.refuses_bad_row() && *i == BAD_ID))
        .collect();
    if target.refuses_bad_row() && matches!(mode, "upsert" | "sync") {
        // The refused update leaves the old row of its key (it was in the target before).
        if BAD_ID % 10 == 0 {
            rows.push((BAD_ID, "old".into(), -1));
        }
    }
    if mode == "upsert" {
        rows.extend([(5001, "gone".into(), 0), (5002, "gone".into(), 0)]);
    }
    let mut out: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(i, n, s)| vec![i.to_string(), n, s.to_string()])
        .collect();
    out.sort();
    out
}

/// One trial's world: the workspace, and the server it writes to.
struct World {
    ws: Workspace,
    target: Target,
    db: Option<TestDb>,
    emu: Option<Running>,
}

impl World {
    async fn new(target: Target, mode: &str) -> Self {
        let ws = Workspace::new();
        let db = match target {
            Target::Postgres => Some(TestDb::new(Server::Postgres).await),
            Target::Mysql => Some(TestDb::new(Server::Mysql).await),
            _ => None,
        };
        let emu = match target {
            Target::OData => Some(ferry_tests::quiet_emulator().await),
            _ => None,
        };
        let world = World {
            ws,
            target,
            db,
            emu,
        };
        world.write_source();
        world.prepare(mode).await;
        world
    }

    fn write_source(&self) {
        let mut csv = String::from("id,name,score\n");
        for i in 1..=ROWS {
            let (i, n, s) = source_row(i);
            csv.push_str(&format!("{i},{n},{s}\n"));
        }
        self.ws.write("in/src.csv", csv);
    }

    /// The target before the run: for every mode but insert, old values for some keys and keys the
    /// source does not have.
    async fn prepare(&self, mode: &str) {
        let mut old: Vec<(i64, &str, i64)> = Vec::new();
        if mode != "insert" {
            old.extend((1..=50).map(|i| (i * 10, "old", -1)));
            old.extend([(5001, "gone", 0), (5002, "gone", 0)]);
        }
        let values: Vec<String> = old
            .iter()
            .map(|(i, n, s)| format!("({i}, '{n}', {s})"))
            .collect();
        match self.target {
            Target::Sqlite => {
                let db = rusqlite::Connection::open(self.ws.join("db.sqlite")).unwrap();
                // Old rows may break the CHECK: they were written before it mattered.
                db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER, CHECK (score >= 0 OR name = 'old'))").unwrap();
                if !values.is_empty() {
                    db.execute_batch(&format!("INSERT INTO t VALUES {}", values.join(",")))
                        .unwrap();
                }
            }
            Target::Postgres | Target::Mysql => {
                let db = self.db.as_ref().unwrap();
                db.exec("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL, score BIGINT, CHECK (score >= 0 OR name = 'old'))").await;
                if !values.is_empty() {
                    db.exec(&format!("INSERT INTO t VALUES {}", values.join(",")))
                        .await;
                }
            }
            // Files and services are filled by Ferry itself, from a file of the old rows.
            Target::Delta | Target::Parquet | Target::OData if !old.is_empty() => {
                let mut csv = String::from("id,name,score\n");
                for (i, n, s) in &old {
                    csv.push_str(&format!("{i},{n},{s}\n"));
                }
                self.ws.write("in/old.csv", csv);
                let mode = if self.target == Target::OData {
                    "upsert"
                } else {
                    "truncate"
                };
                self.ws.write(
                    "init.toml",
                    self.pipeline(mode, "in/old.csv")
                        .replace("name = \"trial\"", "name = \"init\""),
                );
                self.ferry_ok(&["run", "init.toml"]);
            }
            _ => {}
        }
    }

    fn ferry_ok(&self, args: &[&str]) -> String {
        let out = ferry()
            .args(args)
            .args(["--yes"].iter().filter(|_| args[0] == "run"))
            .current_dir(self.ws.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "ferry {args:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The pipeline: the source as it is (OData: mapped to accounts), into the target.
    fn pipeline(&self, mode: &str, source: &str) -> String {
        let key = if matches!(self.target, Target::Delta | Target::Parquet) {
            ""
        } else {
            "key = [\"id\"]\n"
        };
        let (connection, step, target) = match self.target {
            Target::Sqlite => (
                "[connections.db]\nurl = \"sqlite://db.sqlite\"\n".to_string(),
                String::new(),
                "connection = \"db\"\ntable = \"t\"\n".to_string(),
            ),
            Target::Postgres | Target::Mysql => (
                format!(
                    "[connections.db]\nurl = \"{}\"\n",
                    self.db.as_ref().unwrap().url()
                ),
                String::new(),
                "connection = \"db\"\ntable = \"t\"\n".to_string(),
            ),
            Target::Delta => (
                String::new(),
                String::new(),
                "path = \"out/t/\"\nformat = \"delta\"\n".to_string(),
            ),
            Target::Parquet => (
                String::new(),
                String::new(),
                "path = \"out/t.parquet\"\n".to_string(),
            ),
            Target::OData => {
                let emu = self.emu.as_ref().unwrap();
                (
                    format!(
                        "[connections.crm]\nurl = \"{}\"\nkind = \"dataverse\"\nauth = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"app\"\nclient_secret = \"x\"\n",
                        emu.url(),
                        emu.token_url()
                    ),
                    r#"[[steps]]
name = "accounts"
sql = "SELECT concat('A-', CAST(id AS VARCHAR)) AS accountnumber, name, CAST(score AS INT) AS numberofemployees FROM src"
"#.to_string(),
                    "connection = \"crm\"\ntable = \"accounts\"\n".to_string(),
                )
            }
        };
        let key = if self.target == Target::OData {
            "key = [\"accountnumber\"]\n"
        } else {
            key
        };
        format!(
            r#"name = "trial"
{connection}[sources.src]
path = "{source}"
{step}[target]
{target}mode = "{mode}"
{key}batch_size = 25
workers = 2
[run]
max_consecutive_failures = 1000
"#
        )
    }

    /// Every row of the target, as sorted (id, name, score) text rows.
    async fn rows(&self) -> Vec<Vec<String>> {
        match self.target {
            Target::Sqlite => {
                sqlite_rows(&self.ws.join("db.sqlite"), "SELECT id, name, score FROM t")
            }
            Target::Postgres | Target::Mysql => {
                self.db
                    .as_ref()
                    .unwrap()
                    .rows("SELECT id, name, score FROM t")
                    .await
            }
            Target::Delta => {
                ferry_tests::read_delta(&self.ws.join("out/t"), "SELECT id, name, score FROM t")
                    .await
                    .1
            }
            Target::Parquet => ferry_tests::parquet_rows(&self.ws.join("out/t.parquet")).await,
            Target::OData => {
                let emu = self.emu.as_ref().unwrap();
                let mut out: Vec<Vec<String>> = odata_accounts(emu)
                    .await
                    .into_iter()
                    .map(|(number, name, employees)| {
                        vec![
                            number.trim_start_matches("A-").to_string(),
                            name,
                            employees.to_string(),
                        ]
                    })
                    .collect();
                out.sort();
                out
            }
        }
    }

    /// The quarantined ids, sorted (with duplicates, so a row quarantined twice shows).
    async fn quarantined(&self) -> Vec<String> {
        let q = self.ws.join(".ferry/quarantine/t");
        if !q.exists() {
            return Vec::new();
        }
        let mut ids: Vec<String> = ferry_tests::read_delta(&q, "SELECT id FROM t")
            .await
            .1
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        ids.sort();
        ids
    }
}

/// Every account as (accountnumber, name, employees), through the Web API's pages.
async fn odata_accounts(emu: &Running) -> Vec<(String, String, i64)> {
    ferry_tests::odata_records(
        &emu.url(),
        &emu.token_url(),
        "accounts",
        "accountnumber,name,numberofemployees",
    )
    .await
    .iter()
    .map(|r| {
        (
            r["accountnumber"].as_str().unwrap_or_default().to_string(),
            r["name"].as_str().unwrap_or_default().to_string(),
            r["numberofemployees"].as_i64().unwrap_or(i64::MIN),
        )
    })
    .collect()
}

/// Starts `ferry run`, waits until it pauses at `point`, kills it with SIGKILL. Returns false when
/// the run ended without passing the point (a point this run never reaches: the trial is moot).
fn kill_at(dir: &Path, point: &str) -> bool {
    kill_command_at(dir, &["run", "p.toml", "--yes"], point)
}

/// Runs `ferry <args>` in `dir` until it pauses at `point`, then kills it; false if it ended first.
fn kill_command_at(dir: &Path, args: &[&str], point: &str) -> bool {
    let mut child = ferry()
        .args(args)
        .current_dir(dir)
        .env("FERRY_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().starts_with("ferry: paused at") {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
    }
    child.wait().unwrap();
    false
}

/// One trial: kill at `point`, run again, compare the whole target and the quarantine.
async fn trial(target: Target, mode: &str, point: &str) {
    let world = World::new(target, mode).await;
    world.ws.write("p.toml", world.pipeline(mode, "in/src.csv"));
    let paused = kill_at(world.ws.path(), point);
    assert!(paused, "{target:?} {mode}: the run never reached {point}");
    let out = ferry()
        .args(["run", "p.toml", "--yes"])
        .current_dir(world.ws.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want_code = if target.refuses_bad_row() { 3 } else { 0 };
    assert_eq!(
        out.status.code(),
        Some(want_code),
        "{target:?} {mode} after {point}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = world.rows().await;
    let want = expected(target, mode);
    let missing: Vec<_> = want.iter().filter(|r| !rows.contains(r)).take(5).collect();
    let extra: Vec<_> = rows.iter().filter(|r| !want.contains(r)).take(5).collect();
    assert_eq!(
        rows.len(),
        want.len(),
        "{target:?} {mode} after {point}: {} rows, {} expected; missing {missing:?}, unexpected {extra:?}",
        rows.len(),
        want.len()
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{target:?} {mode} after {point}: missing {missing:?}, unexpected {extra:?}"
    );
    let quarantined = world.quarantined().await;
    let want_q: Vec<String> = if target.refuses_bad_row() {
        vec![BAD_ID.to_string()]
    } else {
        Vec::new()
    };
    assert_eq!(
        quarantined, want_q,
        "{target:?} {mode} after {point}: the quarantine"
    );
    if let Some(emu) = world.emu {
        emu.stop().await;
    }
}

/// The whole matrix: every target, every mode, every point.
fn matrix() -> Vec<(Target, &'static str, &'static str)> {
    let mut all = Vec::new();
    for target in Target::ALL {
        for mode in target.modes() {
            for point in target.points(mode) {
                all.push((target, *mode, point));
            }
        }
    }
    all
}

/// The subset CI runs: each target and mode once, at the first of its points not yet tried (else
/// the next in turn), so that every point is tried on some target.
fn representative() -> Vec<(Target, &'static str, &'static str)> {
    let mut subset = Vec::new();
    let mut tried = std::collections::HashSet::new();
    for (turn, (target, mode)) in Target::ALL
        .iter()
        .flat_map(|t| t.modes().iter().map(move |m| (*t, *m)))
        .enumerate()
    {
        let points = target.points(mode);
        let point = points
            .iter()
            .copied()
            .find(|p| !tried.contains(p))
            .unwrap_or(points[turn % points.len()]);
        tried.insert(point);
        subset.push((target, mode, point));
    }
    subset
}

/// Runs every trial, one after the other, and then fails with the list of those that failed.
async fn run_trials(trials: Vec<(Target, &'static str, &'static str)>) {
    let total = trials.len();
    let mut failed = Vec::new();
    for (target, mode, point) in trials {
        // In the test's own task, not a spawned one: the emulator's tasks must stay free to run
        // while the trial waits on `ferry` (a spawned task's children would wait behind it).
        let outcome = std::panic::AssertUnwindSafe(trial(target, mode, point))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let first_line = why.lines().next().unwrap_or_default().to_string();
            failed.push(format!("{target:?} {mode} {point}: {first_line}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} trials failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_representative_subset() {
    run_trials(representative()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the whole matrix, by hand: cargo test --workspace trials -- --ignored"]
async fn trials_full_matrix() {
    let all = matrix();
    eprintln!("{} trials", all.len());
    run_trials(all).await;
}

#[test]
fn the_subset_covers_every_target_mode_and_point() {
    let subset = representative();
    for (target, mode, point) in matrix() {
        assert!(
            subset.iter().any(|(t, m, _)| *t == target && *m == mode),
            "{target:?} {mode}"
        );
        assert!(
            subset.iter().any(|(_, _, p)| *p == point),
            "{point} is never tried"
        );
    }
}

/// The trials that reproduce what a review found, run every time whatever the subset picks: a Delta
/// append killed after its commit (it was appended twice), an OData truncate killed after its first
/// log commit (the resume deleted everything and skipped the logged batches), a crash between the
/// quarantine's commit and the log's (the row was quarantined twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_that_once_lost_or_doubled_rows() {
    run_trials(vec![
        (Target::Delta, "insert", "sink_finished"),
        (Target::OData, "truncate", "log_flushed:1"),
        (Target::OData, "truncate", "truncate_deleted"),
        (Target::Sqlite, "sync", "quarantine_flushed:1"),
        (Target::Postgres, "truncate", "quarantine_flushed:1"),
    ])
    .await;
}

/// A run killed after its batches were logged, then pointed at another database: the new database
/// gets every row (the batches logged against the old one are not its), in a new run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_against_another_target_starts_a_new_run() {
    let world = World::new(Target::Sqlite, "insert").await;
    let ws = &world.ws;
    rusqlite::Connection::open(ws.join("other.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER, CHECK (score >= 0 OR name = 'old'))")
        .unwrap();
    let pipeline = world.pipeline("insert", "in/src.csv");
    ws.write("p.toml", &pipeline);
    assert!(kill_at(ws.path(), "log_flushed:1"));
    ws.write("p.toml", pipeline.replace("db.sqlite", "other.sqlite"));
    let out = ferry()
        .args(["run", "p.toml"])
        .current_dir(ws.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        !stdout.contains("resumed"),
        "a new run, not a resumed one:\n{stdout}"
    );
    assert_eq!(
        sqlite_rows(&ws.join("other.sqlite"), "SELECT id, name, score FROM t"),
        expected(Target::Sqlite, "insert")
    );
}

/// `ferry quarantine retry` killed after its rows landed but before they were marked resolved: the
/// next retry writes them again (an upsert: once in the table) and resolves them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_retry_killed_halfway_is_run_again() {
    let world = World::new(Target::Postgres, "upsert").await;
    let ws = &world.ws;
    ws.write("p.toml", world.pipeline("upsert", "in/src.csv"));
    let out = ferry()
        .args(["run", "p.toml"])
        .current_dir(ws.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The table now accepts the refused row as it is.
    let db = world.db.as_ref().unwrap();
    db.exec("ALTER TABLE t DROP CONSTRAINT t_check").await;
    let paused = kill_command_at(
        ws.path(),
        &["quarantine", "retry", "p.toml", "t"],
        "retry_written",
    );
    assert!(paused, "the retry never reached retry_written");
    let again = ferry()
        .args(["quarantine", "retry", "p.toml", "t"])
        .current_dir(ws.path())
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    let mut want = expected(Target::Postgres, "upsert");
    want.push(vec![
        BAD_ID.to_string(),
        format!("name {BAD_ID}"),
        "-1".into(),
    ]);
    want.sort();
    assert_eq!(world.rows().await, want);
    let (_, resolved) = ferry_tests::read_delta(
        &ws.join(".ferry/quarantine/t"),
        "SELECT id, _ferry_resolved FROM t",
    )
    .await;
    assert_eq!(resolved, vec![vec![BAD_ID.to_string(), "true".to_string()]]);
}
