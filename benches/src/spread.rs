//! `ferry-bench spread`: one migration written by 1, 2, 4... processes on this machine (`ferry run
//! --spread N` and N-1 `ferry worker --join`), each a separate `ferry` process as on separate
//! machines, sharing a state dir: rows/s for each count, to see what binds as processes are added.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Result, bail};

use crate::compare::{PG_TABLE, psql};
use ferry_bench::data;

/// How the processes share a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// `ferry run --spread N` and N-1 `ferry worker --join`.
    Spread,
    /// `ferry run` with `[run] cluster` naming N `ferry worker --listen`s, which read and write.
    Cluster,
}

/// Rows/s of a load of `rows` orders into a fresh PostgreSQL table by each process count.
pub fn spread(
    rows: u64,
    counts: &[usize],
    root: &Path,
    partitions: usize,
    sharing: Sharing,
) -> Result<Vec<(usize, f64)>> {
    let dir = root.join(rows.to_string());
    if !dir.join("orders").exists() {
        data::write_orders_parquet(&dir.join("orders"), 0, rows, 8, 42)?;
    }
    let ferry = ferry_binary()?;
    let scratch = root.join("spread");
    psql("postgres", "DROP DATABASE IF EXISTS ferry_bench_spread")?;
    psql("postgres", "CREATE DATABASE ferry_bench_spread")?;
    let mut measured = Vec::new();
    for &n in counts {
        psql("ferry_bench_spread", "DROP TABLE IF EXISTS orders")?;
        psql("ferry_bench_spread", PG_TABLE)?;
        psql("ferry_bench_spread", "CHECKPOINT")?;
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)?;
        let file = scratch.join("spread.toml");
        let text = format!(
            "name = \"spread\"\nstate_dir = \"{state}\"\n[connections.db]\nurl = \"postgres://postgres@127.0.0.1:5432/ferry_bench_spread\"\n\
             [sources.orders]\npath = \"{data}/orders/*.parquet\"\n\
             [target]\nconnection = \"db\"\ntable = \"orders\"\nmode = \"insert\"\nkey = [\"order_id\"]\nbatch_size = 20000\nworkers = {partitions}\n",
            state = scratch.join("state").display(),
            data = dir.display(),
        );
        let seconds = match sharing {
            Sharing::Spread => {
                std::fs::write(&file, text)?;
                run_processes(&file, n, |_| Command::new(&ferry))?
            }
            Sharing::Cluster => run_cluster(&file, &text, n, &ferry)?,
        };
        // Every row landed once, or the figure means nothing.
        psql(
            "ferry_bench_spread",
            &format!(
                "DO $$ DECLARE n bigint; BEGIN SELECT count(DISTINCT order_id) INTO n FROM orders; \
                 IF n <> {rows} OR n <> (SELECT count(*) FROM orders) THEN \
                 RAISE EXCEPTION '% distinct orders landed, not {rows}', n; END IF; END $$"
            ),
        )?;
        let rate = rows as f64 / seconds;
        println!(
            "bench: spread {sharing:?} processes={n} rows={rows} partitions={partitions} seconds={seconds:.1} rows_per_s={rate:.0}"
        );
        measured.push((n, rate));
    }
    psql("postgres", "DROP DATABASE IF EXISTS ferry_bench_spread")?;
    Ok(measured)
}

/// Records/s of a load of `records` new accounts into the emulator (Dataverse's limits scaled as
/// in `odata-ceiling`) by `users` application users in all, shared out among each count of
/// processes: process p signs in as its own users (`${FERRY_SPREAD_USER_i}` in the one pipeline
/// file, so every process runs the same definition), as separate machines would.
pub async fn spread_odata(
    records: usize,
    counts: &[usize],
    users: usize,
) -> Result<Vec<(usize, f64)>> {
    use ferry_emulator::{self as emulator, Config, Latency};
    let ferry = ferry_binary()?;
    let mut measured = Vec::new();
    for &n in counts {
        if !users.is_multiple_of(n) {
            bail!("{users} users do not share out among {n} processes");
        }
        let per_process = users / n;
        let emu = emulator::start(
            Config {
                limits: crate::ceiling::scaled_limits(),
                latency: Latency {
                    base: std::time::Duration::from_millis(5),
                    per_record: std::time::Duration::from_millis(2),
                    jitter: 0.1,
                    ..Latency::none()
                },
                ..Config::default()
            },
            "127.0.0.1:0".parse()?,
        )
        .await?;
        let dir = tempfile::tempdir()?;
        let mut csv = String::from("accountnumber,name\n");
        for i in 0..records {
            csv.push_str(&format!("C-{i:07},Account {i}\n"));
        }
        std::fs::write(dir.path().join("accounts.csv"), csv)?;
        let names: Vec<String> = (0..per_process)
            .map(|i| format!("${{FERRY_SPREAD_USER_{i}}}"))
            .collect();
        let file = dir.path().join("spread.toml");
        std::fs::write(
            &file,
            format!(
                "name = \"spread-odata\"\n{}[sources.src]\npath = \"accounts.csv\"\n[target]\nconnection = \"crm\"\ntable = \"accounts\"\nmode = \"upsert\"\nkey = [\"accountnumber\"]\nbatch_size = 100\nworkers = {}\nbatch_mode = \"batch\"\n[run]\nmax_retries = 20\n",
                crate::ceiling::connection_with(&emu, &names, 5000),
                16 * users
            ),
        )?;
        let ferry = ferry.clone();
        let command = move |p: usize| {
            let mut c = Command::new(&ferry);
            for i in 0..per_process {
                c.env(
                    format!("FERRY_SPREAD_USER_{i}"),
                    format!("user-{}", p * per_process + i),
                );
            }
            c
        };
        let seconds =
            tokio::task::spawn_blocking(move || run_processes(&file, n, command)).await??;
        let stats: serde_json::Value = reqwest::get(format!("http://{}/_emulator/stats", emu.addr))
            .await?
            .json()
            .await?;
        emu.stop().await;
        let landed = stats["records"]["accounts"].as_u64().unwrap_or(0) as usize;
        if landed != records {
            bail!("{landed} records landed, not {records}");
        }
        let rate = records as f64 / seconds;
        let throttled = stats["total"]["throttled"].as_u64().unwrap_or(0);
        println!(
            "bench: spread-odata processes={n} users={users} records={records} seconds={seconds:.1} records_per_s={rate:.0} throttled={throttled}"
        );
        measured.push((n, rate));
    }
    Ok(measured)
}

/// Runs the leader (`command(0)`) and `n - 1` workers (`command(1..n)`) of the spread run of
/// `file` to the end; the seconds it took.
fn run_processes(file: &Path, n: usize, command: impl Fn(usize) -> Command) -> Result<f64> {
    let started = Instant::now();
    let workers: Vec<_> = (1..n)
        .map(|p| {
            command(p)
                .arg("worker")
                .arg("--join")
                .arg(file)
                .args(["--wait", "5m"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let leader = command(0)
        .arg("run")
        .arg(file)
        .args(["--quiet", "--spread", &n.to_string()])
        .output()?;
    if !leader.status.success() {
        bail!(
            "the leader of {n} failed:\n{}{}",
            String::from_utf8_lossy(&leader.stdout),
            String::from_utf8_lossy(&leader.stderr)
        );
    }
    for worker in workers {
        let out = worker.wait_with_output()?;
        if !out.status.success() {
            bail!("a worker failed:\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Starts `n` `ferry worker --listen`s, then runs `text` (written to `file`) with `[run] cluster`
/// naming them: the seconds the run took (the workers' start is not timed).
fn run_cluster(file: &Path, text: &str, n: usize, ferry: &Path) -> Result<f64> {
    struct Workers(Vec<std::process::Child>);
    impl Drop for Workers {
        fn drop(&mut self) {
            for w in &mut self.0 {
                let _ = w.kill();
                let _ = w.wait();
            }
        }
    }
    let mut workers = Workers(Vec::new());
    let mut urls = Vec::new();
    for _ in 0..n {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        workers.0.push(
            Command::new(ferry)
                .args(["worker", "--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed().as_secs() > 30 {
                bail!("a ferry worker never listened on {port}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        urls.push(format!("\"http://127.0.0.1:{port}\""));
    }
    std::fs::write(
        file,
        format!("{text}[run]\ncluster = [{}]\n", urls.join(", ")),
    )?;
    let started = Instant::now();
    let out = Command::new(ferry)
        .arg("run")
        .arg(file)
        .arg("--quiet")
        .output()?;
    if !out.status.success() {
        bail!(
            "the run over {n} workers failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

fn ferry_binary() -> Result<std::path::PathBuf> {
    std::env::current_exe()?
        .parent()
        .map(|d| d.join("ferry"))
        .filter(|f| f.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the ferry binary is not beside ferry-bench: cargo build --workspace --bins"
            )
        })
}
