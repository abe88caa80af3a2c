//! Bookkeeping on object storage: `state_dir = "az://..."` against a real Azure Blob Storage
//! (Azurite, on loopback) and `"s3://..."` against an S3 (moto's server): the tables land there,
//! processes that share them commit side by side, and the run lock is a lease that a dead holder
//! loses.

use std::process::{Command, Stdio};
use std::time::Duration;

use ferry_tests::{Workspace, azure, ferry_command, s3, sqlite_rows, start_paused};

/// A pipeline `name` from in/<name>.csv into the SQLite table `name`, its books in `state_dir`.
fn pipeline(name: &str, state_dir: &str) -> String {
    format!(
        r#"name = "{name}"
state_dir = "{state_dir}"
[connections.db]
url = "sqlite://db-{name}.sqlite"
[sources.src]
path = "in/{name}.csv"
[target]
connection = "db"
table = "t"
mode = "insert"
create = true
batch_size = 10
workers = 2
"#
    )
}

fn source(ws: &Workspace, name: &str, n: usize) {
    let mut csv = String::from("id,name\n");
    for i in 1..=n {
        csv.push_str(&format!("{i},row {i}\n"));
    }
    ws.write(&format!("in/{name}.csv"), csv);
}

fn expected(n: usize) -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = (1..=n)
        .map(|i| vec![i.to_string(), format!("row {i}")])
        .collect();
    all.sort();
    all
}

/// The object store a test keeps its books in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Azure,
    S3,
}

/// A fresh container (bucket) of `cloud` for the workspace's books; its `state_dir`.
async fn books(ws: &Workspace, cloud: Cloud) -> String {
    let name = format!("ferry-{}", uuid::Uuid::new_v4().simple());
    ws.write("cloud", format!("{cloud:?}"));
    match cloud {
        Cloud::Azure => {
            azure::create_container(&name).await;
            format!("az://{name}/books")
        }
        Cloud::S3 => {
            s3::create_bucket(&name).await;
            format!("s3://{name}/books")
        }
    }
}

/// `ferry` with the environment that points az:// or s3:// at the test's server.
fn ferry(ws: &Workspace) -> Command {
    let mut c = ferry_command();
    c.current_dir(ws.path()).env("FERRY_LEASE_SECONDS", "4");
    match std::fs::read_to_string(ws.join("cloud")).as_deref() {
        Ok("S3") => c.envs(s3::env()),
        _ => c.envs(azure::env()),
    };
    c
}

fn ferry_ok(ws: &Workspace, args: &[&str]) -> String {
    let out = ferry(ws).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ferry {args:?}:\n{text}");
    text
}

/// The runs of a pipeline as `ferry history --json` lists them: (status, rows written).
fn history(ws: &Workspace, file: &str) -> Vec<(String, i64)> {
    ferry_ok(ws, &["history", file, "--json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["status"].as_str().unwrap_or_default().to_string(),
                v["rows_written"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// A run keeps its books in Azure Blob Storage; a run killed after logging batches is resumed
/// from them, and every row lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_its_books_in_azure_and_resumes_from_them() {
    keeps_its_books_and_resumes(Cloud::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_its_books_in_s3_and_resumes_from_them() {
    keeps_its_books_and_resumes(Cloud::S3).await;
}

async fn keeps_its_books_and_resumes(cloud: Cloud) {
    let ws = Workspace::new();
    let state_dir = books(&ws, cloud).await;
    source(&ws, "p", 95);
    ws.write("p.toml", pipeline("p", &state_dir));

    let mut run = ferry(&ws);
    run.args(["run", "p.toml"]);
    let mut child = start_paused(run, "log_flushed:1").expect("the run flushes its log");
    child.kill().unwrap();
    child.wait().unwrap();

    // The killed run's lease is still fresh: wait it out (FERRY_LEASE_SECONDS below) and resume.
    std::thread::sleep(Duration::from_secs(5));
    let out = ferry_ok(&ws, &["run", "p.toml"]);
    assert!(out.contains("resum"), "{out}");
    assert_eq!(
        sqlite_rows(&ws.join("db-p.sqlite"), "SELECT id, name FROM t"),
        expected(95)
    );
    let runs = history(&ws, "p.toml");
    assert_eq!(runs.len(), 1, "one run, resumed: {runs:?}");
    assert_eq!(runs[0].0, "Completed", "{runs:?}");
    // Nothing on local disk: the books are in the container.
    assert!(!ws.join(".ferry").exists());
    let log = ferry_ok(&ws, &["log", "p.toml", "--json"]);
    let batches = log.lines().filter(|l| l.starts_with('{')).count();
    assert_eq!(batches, 10, "95 rows in batches of 10:\n{log}");
}

/// Two processes run two pipelines at once with their books in the same object-storage folder:
/// every commit of both lands (Delta's commits there are create-if-absent puts, retried on a race).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_state_dir_on_azure() {
    two_processes_share_one_state_dir(Cloud::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_state_dir_on_s3() {
    two_processes_share_one_state_dir(Cloud::S3).await;
}

async fn two_processes_share_one_state_dir(cloud: Cloud) {
    let ws = Workspace::new();
    let state_dir = books(&ws, cloud).await;
    for name in ["a", "b"] {
        source(&ws, name, 200);
        ws.write(&format!("{name}.toml"), pipeline(name, &state_dir));
    }
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            ferry(&ws)
                .args(["run", &format!("{name}.toml")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for name in ["a", "b"] {
        assert_eq!(
            sqlite_rows(
                &ws.join(&format!("db-{name}.sqlite")),
                "SELECT id, name FROM t"
            ),
            expected(200)
        );
        assert_eq!(
            history(&ws, &format!("{name}.toml")),
            vec![("Completed".to_string(), 200)]
        );
        let log = ferry_ok(&ws, &["log", &format!("{name}.toml"), "--json"]);
        assert_eq!(
            log.lines().filter(|l| l.starts_with('{')).count(),
            20,
            "{log}"
        );
    }
    // Every pipeline's runs, read from the bucket without a pipeline file.
    let mut every: Vec<(String, String)> =
        ferry_ok(&ws, &["history", "--state-dir", &state_dir, "--json"])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["pipeline"].as_str().unwrap_or_default().to_string(),
                    v["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
    every.sort();
    assert_eq!(
        every,
        vec![
            ("a".to_string(), "Completed".to_string()),
            ("b".to_string(), "Completed".to_string())
        ]
    );
}

/// While a run holds the lease, a second run of the pipeline is refused, naming the holder; a
/// holder killed with SIGKILL stops renewing, its lease expires, and the next run takes it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_on_azure_expires_and_the_next_run_takes_over() {
    a_dead_holders_lease_expires(Cloud::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_on_s3_expires_and_the_next_run_takes_over() {
    a_dead_holders_lease_expires(Cloud::S3).await;
}

async fn a_dead_holders_lease_expires(cloud: Cloud) {
    let ws = Workspace::new();
    let state_dir = books(&ws, cloud).await;
    source(&ws, "p", 40);
    ws.write("p.toml", pipeline("p", &state_dir));

    let mut run = ferry(&ws);
    run.args(["run", "p.toml"]);
    let mut holder = start_paused(run, "log_flushed:1").expect("the run flushes its log");

    // Held, and renewed: still refused after longer than the lease's time to live.
    for _ in 0..2 {
        let out = ferry(&ws).args(["run", "p.toml"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success());
        assert!(
            text.contains(&format!(
                "pipeline \"p\" is already running (process {} on",
                holder.id()
            )),
            "{text}"
        );
        std::thread::sleep(Duration::from_secs(3));
    }

    holder.kill().unwrap();
    holder.wait().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let out = ferry_ok(&ws, &["run", "p.toml"]);
    assert!(out.contains("resum"), "{out}");
    assert_eq!(
        sqlite_rows(&ws.join("db-p.sqlite"), "SELECT id, name FROM t"),
        expected(40)
    );
    // Released when the run ended: a next run, started at once, takes the lease without waiting
    // for it to expire.
    ferry_ok(&ws, &["run", "p.toml"]);
    assert_eq!(history(&ws, "p.toml").len(), 2);
}

/// An incremental source over an object-storage folder: each run reads the objects no earlier run
/// consumed, and the checkpoints that say so are in object storage too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_source_reads_new_objects_of_a_folder() {
    let ws = Workspace::new();
    let bucket = format!("ferry-{}", uuid::Uuid::new_v4().simple());
    azure::create_container(&bucket).await;
    azure::upload(&format!("{bucket}/in/1.csv"), "id,name\n1,row 1\n2,row 2\n").await;
    azure::upload(&format!("{bucket}/in/2.csv"), "id,name\n3,row 3\n").await;
    azure::upload(&format!("{bucket}/in/notes.txt"), "not a csv").await;
    ws.write(
        "p.toml",
        format!(
            r#"name = "p"
state_dir = "az://{bucket}/books"
[connections.db]
url = "sqlite://db.sqlite"
[sources.src]
path = "az://{bucket}/in/"
format = "csv"
incremental = true
[target]
connection = "db"
table = "t"
mode = "insert"
create = true
"#
        ),
    );
    ferry_ok(&ws, &["run", "p.toml"]);
    assert_eq!(
        sqlite_rows(&ws.join("db.sqlite"), "SELECT id, name FROM t"),
        expected(3)
    );
    azure::upload(&format!("{bucket}/in/3.csv"), "id,name\n4,row 4\n5,row 5\n").await;
    let out = ferry_ok(&ws, &["run", "p.toml"]);
    assert_eq!(
        sqlite_rows(&ws.join("db.sqlite"), "SELECT id, name FROM t"),
        expected(5),
        "{out}"
    );
    // Nothing new: nothing read.
    ferry_ok(&ws, &["run", "p.toml"]);
    assert_eq!(
        sqlite_rows(&ws.join("db.sqlite"), "SELECT id, name FROM t"),
        expected(5)
    );
}
