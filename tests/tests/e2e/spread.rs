//! A run spread over processes (`ferry run --spread N` and `ferry worker --join`): one of them is
//! killed with SIGKILL in the middle of its partitions; the others take them over, and every row
//! lands exactly once, in PostgreSQL, MariaDB and the emulator.

use std::process::{Child, Command, Stdio};

use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, azure, ferry_command, odata_records, quiet_emulator, start_paused};

const ROWS: usize = 30_000;

fn source(ws: &Workspace) {
    let mut csv = String::from("id,name,amount\n");
    for i in 1..=ROWS {
        csv.push_str(&format!("{i},row {i},{}\n", i * 3));
    }
    ws.write("in/src.csv", csv);
}

/// Every source row as the target holds it: (id, name, amount), sorted as `TestDb::rows` sorts.
fn source_rows() -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = (1..=ROWS)
        .map(|i| vec![i.to_string(), format!("row {i}"), (i * 3).to_string()])
        .collect();
    all.sort();
    all
}

fn ferry(ws: &Workspace) -> Command {
    let mut c = ferry_command();
    c.current_dir(ws.path()).env("FERRY_LEASE_SECONDS", "4");
    if ws.join("azure").exists() {
        c.envs(azure::env());
    }
    c
}

/// Starts the leader, a worker, and a worker that pauses after its first batch; kills the last
/// once it paused; returns the leader's and the surviving worker's outputs.
fn three_processes_one_killed(ws: &Workspace) -> (String, String) {
    let spawn = |args: &[&str]| -> Child {
        let mut c = ferry(ws);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let mut join = ferry(ws);
    join.args(["worker", "--join", "p.toml"]);
    let worker = spawn(&["worker", "--join", "p.toml"]);
    let leader = spawn(&["run", "p.toml", "--spread", "3"]);
    let mut doomed = start_paused(join, "batch_written:1")
        .unwrap_or_else(|said| panic!("the doomed worker never wrote a batch:\n{said}"));
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let text = |child: Child| {
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    (text(leader), text(worker))
}

/// A `ferry worker --join p.toml`, its output kept.
fn joining(ws: &Workspace) -> Child {
    ferry(ws)
        .args(["worker", "--join", "p.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What a finished `ferry` wrote, standard output then standard error.
fn said(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn history(ws: &Workspace) -> Vec<serde_json::Value> {
    let out = ferry(ws)
        .args(["history", "p.toml", "--json"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_run_into_postgres_survives_a_killed_process() {
    spread_into(Server::Postgres, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_run_into_mariadb_survives_a_killed_process() {
    spread_into(Server::Mysql, None).await;
}

/// The same with the books on object storage (Azurite), as processes on several machines share
/// them: the killed process's partition leases expire, and the others take its partitions over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_run_with_books_on_object_storage_survives_a_killed_process() {
    let bucket = format!("ferry-{}", uuid::Uuid::new_v4().simple());
    azure::create_container(&bucket).await;
    spread_into(Server::Postgres, Some(format!("az://{bucket}/books"))).await;
}

/// The source rows as a PostgreSQL table `src` of `db`, read on two connections in ranges of id:
/// the plan knows id's least and greatest values, so the spread run's partitions are ranges of id.
async fn source_table(db: &TestDb) -> &'static str {
    db.exec("CREATE TABLE src (id BIGINT PRIMARY KEY, name TEXT, amount BIGINT)")
        .await;
    db.exec(&format!(
        "INSERT INTO src SELECT i, 'row ' || i, i * 3 FROM generate_series(1, {ROWS}) AS i"
    ))
    .await;
    "[sources.src]\nconnection = \"db\"\ntable = \"src\"\npartitions = 2\npartition_column = \"id\"\n"
}

/// `p.toml`: the table `src` of `db` (read in ranges of id) upserted into its table `t`, in 4
/// partitions.
async fn table_to_table(ws: &Workspace, db: &TestDb) {
    let source = source_table(db).await;
    ws.write(
        "p.toml",
        format!(
            "name = \"p\"\n[connections.db]\nurl = \"{}\"\n{source}[target]\nconnection = \"db\"\ntable = \"t\"\nmode = \"upsert\"\nkey = [\"id\"]\ncreate = true\nbatch_size = 500\nworkers = 4\n",
            db.url()
        ),
    );
}

/// Each process of a spread run whose partitions are ranges reads only its share: the worker's
/// sources gave it exactly the rows it wrote (the ranges reach PostgreSQL as WHERE clauses), about
/// half of them, and together the two processes wrote every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_process_of_a_spread_run_reads_only_its_share_of_a_database_source() {
    let ws = Workspace::new();
    let db = TestDb::new(Server::Postgres).await;
    table_to_table(&ws, &db).await;
    let worker = joining(&ws);
    let leader = ferry(&ws)
        .args(["run", "p.toml", "--spread", "2"])
        .output()
        .unwrap();
    assert!(leader.status.success(), "{}", said(&leader));
    let out = worker.wait_with_output().unwrap();
    let joined = said(&out);
    assert!(out.status.success(), "{joined}");
    // "joined run …: wrote partitions [1, 3] (15000 rows, its sources gave 15000); …"
    let figures = joined
        .split_once(" rows, its sources gave ")
        .and_then(|(before, after)| {
            let written: u64 = before.rsplit('(').next()?.parse().ok()?;
            let read: u64 = after.split(')').next()?.parse().ok()?;
            Some((written, read))
        })
        .unwrap_or_else(|| panic!("no figures in the worker's summary:\n{joined}"));
    let (written, read) = figures;
    assert_eq!(written, read, "{joined}");
    assert!(
        written > 0 && written < ROWS as u64,
        "the worker should have written a share, not {written}:\n{joined}"
    );
    assert!(db.rows("SELECT id, name, amount FROM t").await == source_rows());
    let runs = history(&ws);
    assert_eq!(runs[0]["status"], "Completed", "{runs:?}");
    assert_eq!(runs[0]["rows_written"], ROWS as i64, "{runs:?}");
}

/// Every process of a spread run reads a PostgreSQL source at the leader's point in time: rows
/// changed after the leader took its snapshot, before the worker planned, are written as they were
/// (the worker would have read its ranges negated at its own point in time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_of_a_spread_run_reads_the_leaders_snapshot() {
    let ws = Workspace::new();
    let db = TestDb::new(Server::Postgres).await;
    table_to_table(&ws, &db).await;
    let leader = ferry(&ws)
        .args(["run", "p.toml", "--spread", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The leader announces the run once it has planned, its snapshot taken; it then waits for
    // the worker before it reads.
    let runs = ws.join(".ferry/runs/p");
    let announced = || {
        std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|run| run.path().join("spread.json").exists())
    };
    let waited = std::time::Instant::now();
    while !announced() {
        assert!(
            waited.elapsed().as_secs() < 120,
            "the leader never announced"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    db.exec("UPDATE src SET amount = -amount").await;
    let worker = ferry(&ws)
        .args(["worker", "--join", "p.toml"])
        .output()
        .unwrap();
    let joined = said(&worker);
    assert!(worker.status.success(), "{joined}");
    assert!(!joined.contains("wrote partitions [] "), "{joined}");
    let leader = leader.wait_with_output().unwrap();
    assert!(leader.status.success(), "{}", said(&leader));
    assert!(
        db.rows("SELECT id, name, amount FROM t").await == source_rows(),
        "rows read at another point in time:\n{joined}"
    );
}

async fn spread_into(server: Server, state_dir: Option<String>) {
    let ws = Workspace::new();
    if state_dir.is_some() {
        // Marks the workspace whose `ferry`s use the test's Azurite.
        ws.write("azure", "");
    }
    let db = TestDb::new(server).await;
    // Into PostgreSQL the source is a table read in ranges (partitions are ranges of the key);
    // elsewhere a CSV file (partitions are the key's hashes).
    let source = match server {
        Server::Postgres if state_dir.is_none() => source_table(&db).await,
        _ => {
            source(&ws);
            "[sources.src]\npath = \"in/src.csv\"\n"
        }
    };
    let state_dir = state_dir
        .map(|s| format!("state_dir = \"{s}\"\n"))
        .unwrap_or_default();
    ws.write(
        "p.toml",
        format!(
            r#"name = "p"
{state_dir}[connections.db]
url = "{}"
{source}[target]
connection = "db"
table = "t"
mode = "upsert"
key = ["id"]
create = true
batch_size = 50
workers = 6
"#,
            db.url()
        ),
    );
    let (leader, worker) = three_processes_one_killed(&ws);
    assert!(worker.contains("joined run"), "{worker}");
    assert!(
        db.rows("SELECT id, name, amount FROM t").await == source_rows(),
        "not every row exactly once:\n{leader}"
    );
    let runs = history(&ws);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "Completed", "{runs:?}");
    assert!(
        runs[0]["rows_written"].as_i64().unwrap() >= ROWS as i64,
        "{runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_run_into_the_emulator_survives_a_killed_process() {
    let ws = Workspace::new();
    let emu = quiet_emulator().await;
    source(&ws);
    ws.write(
        "p.toml",
        format!(
            r#"name = "p"
[connections.crm]
url = "{url}"
kind = "dataverse"
auth = "client_credentials"
token_url = "{token}"
client_id = "app"
client_secret = "x"
[sources.src]
path = "in/src.csv"
[[steps]]
name = "accounts"
sql = "SELECT concat('A-', CAST(id AS VARCHAR)) AS accountnumber, name, CAST(amount AS INT) AS numberofemployees FROM src"
[target]
connection = "crm"
table = "accounts"
mode = "upsert"
key = ["accountnumber"]
batch_size = 50
workers = 6
"#,
            url = emu.url(),
            token = emu.token_url()
        ),
    );
    three_processes_one_killed(&ws);
    let records = odata_records(
        &emu.url(),
        &emu.token_url(),
        "accounts",
        "accountnumber,numberofemployees",
    )
    .await;
    let mut landed: Vec<(i64, i64)> = records
        .iter()
        .map(|r| {
            let number = r["accountnumber"].as_str().unwrap();
            (
                number.strip_prefix("A-").unwrap().parse().unwrap(),
                r["numberofemployees"].as_i64().unwrap(),
            )
        })
        .collect();
    landed.sort();
    let expected: Vec<(i64, i64)> = (1..=ROWS as i64).map(|i| (i, 3 * i)).collect();
    assert!(landed == expected, "not every record exactly once");
    let runs = history(&ws);
    assert_eq!(runs[0]["status"], "Completed", "{runs:?}");
}

/// The leader killed once the run started: the worker writes the partitions, and the next `ferry run --spread`
/// resumes the same run (its lock ended with the dead leader), finds every partition done,
/// finishes the target and records the run Completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_run_is_resumed_by_the_next_leader() {
    dead_leader(None).await;
}

/// The same with the books on object storage: the dead leader's run lease expires, and the next
/// leader takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_lease_on_object_storage_expires_and_the_next_leader_resumes() {
    let bucket = format!("ferry-{}", uuid::Uuid::new_v4().simple());
    azure::create_container(&bucket).await;
    dead_leader(Some(format!("az://{bucket}/books"))).await;
}

async fn dead_leader(state_dir: Option<String>) {
    let ws = Workspace::new();
    if state_dir.is_some() {
        ws.write("azure", "");
    }
    let state_dir = state_dir
        .map(|s| format!("state_dir = \"{s}\"\n"))
        .unwrap_or_default();
    let db = TestDb::new(Server::Postgres).await;
    source(&ws);
    ws.write(
        "p.toml",
        format!(
            "name = \"p\"\n{state_dir}[connections.pg]\nurl = \"{}\"\n[sources.src]\npath = \"in/src.csv\"\n[target]\nconnection = \"pg\"\ntable = \"t\"\nmode = \"upsert\"\nkey = [\"id\"]\ncreate = true\nbatch_size = 50\nworkers = 6\n",
            db.url()
        ),
    );
    let worker = joining(&ws);
    let mut lead = ferry(&ws);
    lead.args(["run", "p.toml", "--spread", "2"]);
    let mut leader = start_paused(lead, "spread_arrived").expect("the leader arrives");
    leader.kill().unwrap();
    leader.wait().unwrap();
    let out = worker.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let again = ferry(&ws)
        .args(["run", "p.toml", "--spread", "2"])
        .output()
        .unwrap();
    let text = said(&again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("resumed"), "{text}");
    assert!(db.rows("SELECT id, name, amount FROM t").await == source_rows());
    let runs = history(&ws);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "Completed", "{runs:?}");
}
