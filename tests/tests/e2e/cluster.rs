//! A run whose steps are planned across `ferry worker` processes (`[run] cluster`): the same rows
//! in the target as a run in one process, the work done by the workers (a run with its workers gone
//! fails rather than quietly computing alone), and sources the workers cannot read refused.

use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::db::{Server, TestDb};
use ferry_tests::{
    Workspace, azure, ferry_command, odata_records, quiet_emulator, rows, sqlite_rows, start_paused,
};

/// A `ferry worker` on a free loopback port, stopped when dropped.
struct WorkerProcess {
    child: Child,
    url: String,
}

impl WorkerProcess {
    fn start() -> WorkerProcess {
        WorkerProcess::start_with(Vec::new())
    }

    fn start_with(env: Vec<(&'static str, String)>) -> WorkerProcess {
        let port = free_port();
        let child = worker_command(port)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        WorkerProcess::listening(child, port)
    }

    /// `child`, a worker, once it listens on `port`.
    fn listening(child: Child, port: u16) -> WorkerProcess {
        WorkerProcess {
            child,
            url: listened(port),
        }
    }
}

/// The URL of the worker on `port`, once it listens.
fn listened(port: u16) -> String {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("http://127.0.0.1:{port}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn worker_command(port: u16) -> std::process::Command {
    let mut c = ferry_command();
    c.args(["worker", "--listen", &format!("127.0.0.1:{port}")]);
    c
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Six CSV files of orders: customer c<i % 37>, amount i, for i in 1..=6000.
fn orders(ws: &Workspace) {
    for file in 0..6 {
        let mut csv = String::from("order_id,customer,amount\n");
        for i in file * 1000 + 1..=(file + 1) * 1000 {
            csv.push_str(&format!("{i},c{},{i}\n", i % 37));
        }
        ws.write(&format!("in/orders-{file}.csv"), csv);
    }
}

fn pipeline(db: &str, cluster: &[&str]) -> String {
    let cluster = if cluster.is_empty() {
        String::new()
    } else {
        let urls: Vec<String> = cluster.iter().map(|u| format!("\"{u}\"")).collect();
        format!("[run]\ncluster = [{}]\n", urls.join(", "))
    };
    format!(
        r#"name = "totals"
[connections.db]
url = "sqlite://{db}"
[sources.orders]
path = "in/"
format = "csv"
[[steps]]
name = "totals"
sql = """
SELECT o.customer, count(*) AS orders, sum(o.amount) AS total, max(b.biggest_even) AS biggest
FROM orders o
JOIN (SELECT customer, max(amount) AS biggest_even FROM orders WHERE amount % 2 = 0 GROUP BY customer) b
  ON b.customer = o.customer
GROUP BY o.customer
"""
[target]
connection = "db"
table = "totals"
mode = "upsert"
key = ["customer"]
create = true
{cluster}"#
    )
}

fn run(ws: &Workspace, file: &str) -> (bool, String) {
    let out = ferry_command()
        .args(["run", file])
        .current_dir(ws.path())
        .env("FERRY_CLUSTER_SCAN_BYTES", "4096")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_run_across_two_workers_lands_what_one_process_computes() {
    let ws = Workspace::new();
    orders(&ws);
    let workers = [WorkerProcess::start(), WorkerProcess::start()];
    let owned: Vec<String> = workers.iter().map(|w| w.url.clone()).collect();
    let urls: Vec<&str> = owned.iter().map(String::as_str).collect();
    ws.write("alone.toml", pipeline("alone.sqlite", &[]));
    ws.write("spread.toml", pipeline("spread.sqlite", &urls));

    let (ok, out) = run(&ws, "alone.toml");
    assert!(ok, "{out}");
    let (ok, out) = run(&ws, "spread.toml");
    assert!(ok, "{out}");
    let query = "SELECT customer, orders, total, biggest FROM totals";
    let alone = sqlite_rows(&ws.join("alone.sqlite"), query);
    assert_eq!(alone.len(), 37);
    assert_eq!(sqlite_rows(&ws.join("spread.sqlite"), query), alone);

    // The workers computed it: without them, the run fails and says which worker is missing.
    drop(workers);
    ws.write("gone.toml", pipeline("gone.sqlite", &urls));
    let (ok, out) = run(&ws, "gone.toml");
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "the worker {}/ of [run] cluster does not answer",
            owned[0]
        )) || out.contains(&format!(
            "the worker {}/ of [run] cluster does not answer",
            owned[1]
        )),
        "{out}"
    );
}

#[test]
fn a_cluster_refuses_sources_the_workers_cannot_read() {
    let ws = Workspace::new();
    ws.write("in/a.xlsx", b"not read");
    ws.write(
        "p.toml",
        r#"name = "p"
[connections.db]
url = "sqlite://db.sqlite"
[sources.sheet]
path = "in/a.xlsx"
[target]
connection = "db"
table = "t"
create = true
[run]
cluster = ["http://127.0.0.1:9"]
"#,
    );
    let out = ferry_command()
        .args(["validate", "p.toml"])
        .current_dir(ws.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("with a cluster, sources are parquet, CSV or JSON files"),
        "{text}"
    );
}

/// Workers read the files of an object store themselves (here Azure Blob Storage, Azurite), with
/// the stores made from their own environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_read_files_from_object_storage() {
    let ws = Workspace::new();
    let bucket = format!("ferry-{}", uuid::Uuid::new_v4().simple());
    azure::create_container(&bucket).await;
    for file in 0..3 {
        let mut csv = String::from("order_id,customer,amount\n");
        for i in file * 100 + 1..=(file + 1) * 100 {
            csv.push_str(&format!("{i},c{},{i}\n", i % 3));
        }
        azure::upload(&format!("{bucket}/orders/{file}.csv"), csv).await;
    }
    // Two: a stage of one task runs in the planning process, so one worker would never be asked.
    let workers = [
        WorkerProcess::start_with(azure::env()),
        WorkerProcess::start_with(azure::env()),
    ];
    ws.write(
        "p.toml",
        format!(
            r#"name = "p"
[connections.db]
url = "sqlite://db.sqlite"
[sources.orders]
path = "az://{bucket}/orders/"
format = "csv"
[[steps]]
name = "totals"
sql = "SELECT customer, count(*) AS orders, sum(amount) AS total FROM orders GROUP BY customer"
[target]
connection = "db"
table = "totals"
create = true
[run]
cluster = ["{}", "{}"]
"#,
            workers[0].url, workers[1].url
        ),
    );
    let out = ferry_command()
        .args(["run", "p.toml"])
        .current_dir(ws.path())
        .envs(azure::env())
        .env("FERRY_CLUSTER_SCAN_BYTES", "1024")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Customer c0: 3, 6, ..., 300 (100 orders, 15,150); c1: 1, 4, ..., 298; c2: 2, 5, ..., 299.
    assert_eq!(
        sqlite_rows(
            &ws.join("db.sqlite"),
            "SELECT customer, orders, total FROM totals"
        ),
        rows(&[
            &["c0", "100", "15150"],
            &["c1", "100", "14950"],
            &["c2", "100", "15050"]
        ])
    );
    // The workers read them: without them the same run fails.
    drop(workers);
    let out = ferry_command()
        .args(["run", "p.toml", "--fresh"])
        .current_dir(ws.path())
        .envs(azure::env())
        .env("FERRY_CLUSTER_SCAN_BYTES", "1024")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Into PostgreSQL with a key, the workers write themselves: the shuffle by key hands each task its
/// partitions, which it writes through its own connections and logs in the run's books. A worker
/// killed (SIGKILL) after its first batch fails the run; the next run, with a worker in its place,
/// resumes it, and every row is in the target exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_write_into_postgres_and_a_killed_one_loses_and_doubles_nothing() {
    let ws = Workspace::new();
    orders(&ws);
    let db = TestDb::new(Server::Postgres).await;
    let target = format!(
        r#"[connections.db]
url = "{}"
[[steps]]
name = "doubled"
sql = "SELECT order_id, customer, amount * 2 AS doubled FROM orders"
[target]
connection = "db"
table = "doubled"
mode = "upsert"
key = ["order_id"]
create = true
"#,
        db.url()
    );
    one_writing_worker_killed(&ws, &target);
    let mut expected: Vec<Vec<String>> = (1..=6000)
        .map(|i| vec![i.to_string(), format!("c{}", i % 37), (2 * i).to_string()])
        .collect();
    expected.sort();
    assert!(
        db.rows("SELECT order_id, customer, doubled FROM doubled")
            .await
            == expected,
        "not every row exactly once"
    );
}

/// The same into the emulator: each worker signs in and writes its records in `$batch`es.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_write_into_the_emulator_and_a_killed_one_loses_and_doubles_nothing() {
    let ws = Workspace::new();
    orders(&ws);
    let emu = quiet_emulator().await;
    let target = format!(
        r#"[connections.crm]
url = "{url}"
kind = "dataverse"
auth = "client_credentials"
token_url = "{token}"
client_id = "app"
client_secret = "x"
[[steps]]
name = "accounts"
sql = "SELECT concat('A-', CAST(order_id AS VARCHAR)) AS accountnumber, customer AS name, CAST(amount * 2 AS INT) AS numberofemployees FROM orders"
[target]
connection = "crm"
table = "accounts"
mode = "upsert"
key = ["accountnumber"]
"#,
        url = emu.url(),
        token = emu.token_url()
    );
    one_writing_worker_killed(&ws, &target);
    let records = odata_records(
        &emu.url(),
        &emu.token_url(),
        "accounts",
        "accountnumber,name,numberofemployees",
    )
    .await;
    let mut landed: Vec<(i64, String, i64)> = records
        .iter()
        .map(|r| {
            let number = r["accountnumber"].as_str().unwrap();
            (
                number.strip_prefix("A-").unwrap().parse().unwrap(),
                r["name"].as_str().unwrap().to_string(),
                r["numberofemployees"].as_i64().unwrap(),
            )
        })
        .collect();
    landed.sort();
    let expected: Vec<(i64, String, i64)> = (1..=6000)
        .map(|i| (i, format!("c{}", i % 37), 2 * i))
        .collect();
    assert!(landed == expected, "not every record exactly once");
}

/// Runs the orders into `target` (its connection, step and `[target]`) over three workers, the
/// third of which freezes once it has written and logged a batch (only a worker that writes gets
/// there) and is killed: the run fails. A worker in its place, the same pipeline run again resumes
/// the run and completes it.
fn one_writing_worker_killed(ws: &Workspace, target: &str) {
    let workers = [WorkerProcess::start(), WorkerProcess::start()];
    let doomed_port = free_port();
    let (paused, doomed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = paused.send(start_paused(worker_command(doomed_port), "batch_written:1"));
    });
    let doomed_url = listened(doomed_port);
    ws.write(
        "p.toml",
        format!(
            "name = \"written\"\n[sources.orders]\npath = \"in/\"\nformat = \"csv\"\n{target}batch_size = 100\n[run]\ncluster = [\"{}\", \"{}\", \"{doomed_url}\"]\n",
            workers[0].url, workers[1].url
        ),
    );
    let first = std::thread::spawn({
        let dir = ws.path().to_path_buf();
        move || {
            ferry_command()
                .args(["run", "p.toml"])
                .current_dir(dir)
                .env("FERRY_CLUSTER_SCAN_BYTES", "4096")
                .output()
                .unwrap()
        }
    });
    let mut doomed = doomed
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the third worker never wrote a batch"))
        .unwrap_or_else(|said| panic!("the third worker never wrote a batch:\n{said}"));
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let failed = first.join().unwrap();
    let said = String::from_utf8_lossy(&failed.stdout).to_string()
        + &String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{said}");

    let _replacement = WorkerProcess::listening(
        worker_command(doomed_port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        doomed_port,
    );
    let (ok, out) = run(ws, "p.toml");
    assert!(ok, "{out}");
    assert!(out.contains("resum"), "{out}");
}

/// A database table with a cluster: read whole by the run's process (a stage of one task), its rows
/// shuffled by key to the workers, which write them; every row once. Read in partitions, it is
/// refused when the pipeline loads, saying what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_source_is_read_by_the_run_and_written_by_the_workers() {
    let ws = Workspace::new();
    let db = TestDb::new(Server::Postgres).await;
    db.exec("CREATE TABLE src (id BIGINT PRIMARY KEY, name TEXT)")
        .await;
    db.exec("INSERT INTO src SELECT i, 'n' || i FROM generate_series(1, 5000) AS i")
        .await;
    let workers = [WorkerProcess::start(), WorkerProcess::start()];
    let pipeline = |partitions: &str| {
        format!(
            "name = \"copied\"\n[connections.db]\nurl = \"{}\"\n[sources.src]\nconnection = \"db\"\ntable = \"src\"\n{partitions}[[steps]]\nname = \"s\"\nsql = \"SELECT id, upper(name) AS name FROM src\"\n[target]\nconnection = \"db\"\ntable = \"dst\"\nmode = \"upsert\"\nkey = [\"id\"]\ncreate = true\nbatch_size = 200\n[run]\ncluster = [\"{}\", \"{}\"]\n",
            db.url(),
            workers[0].url,
            workers[1].url
        )
    };
    ws.write("p.toml", pipeline(""));
    let (ok, out) = run(&ws, "p.toml");
    assert!(ok, "{out}");
    let mut expected: Vec<Vec<String>> = (1..=5000)
        .map(|i| vec![i.to_string(), format!("N{i}")])
        .collect();
    expected.sort();
    assert!(
        db.rows("SELECT id, name FROM dst").await == expected,
        "not every row exactly once"
    );

    ws.write(
        "partitioned.toml",
        pipeline("partitions = 2\npartition_column = \"id\"\n"),
    );
    let (ok, out) = run(&ws, "partitioned.toml");
    assert!(!ok, "{out}");
    assert!(
        out.contains("with a cluster, a database source is read whole by the run's process")
            && out.contains("ferry run --spread N"),
        "{out}"
    );
}
