//! `ferry-bench compare`: Ferry against the reference tool of each scenario, on the same rows, runs
//! alternating (reference, Ferry, reference, Ferry, ...) so that the machine's drift hits both alike;
//! prints each side's rows/s and the ratio with min/median/max.
//!
//! ```text
//! pg-insert     psql \copy FROM CSV into an empty keyed table   | Ferry insert from parquet
//! pg-upsert     hand-written: \copy into a temp table, one INSERT ... ON CONFLICT DO UPDATE
//!                                                                | Ferry upsert of the same update set
//! pg-sync       hand-written: the same + one anti-join DELETE    | Ferry sync
//! pg-sync-unchanged  the same, from 90% of the rows unchanged    | Ferry sync (a tenth deleted,
//!                    (a nightly re-sync)                          | nothing else changed)
//! pg-read       psql \copy (SELECT ...) TO CSV                   | Ferry table → parquet, 2 partitions
//! mysql-insert  LOAD DATA LOCAL INFILE from CSV                  | Ferry insert from parquet
//! mysql-read    mysql --batch --quick SELECT * into a TSV file   | Ferry table → parquet, 2 partitions
//! pg-arrow      the same as pg-read                              | Ferry table → Arrow, 2 partitions:
//! mysql-arrow   the same as mysql-read                           | every column aggregated in a step
//!                                                                | (the read alone; one row out)
//! pg-arrow-blocks  the same as pg-read                           | pg-arrow over 2 ranges of blocks
//!                                                                | (partition_column = "ctid")
//! odata         the emulator's configured ceiling (Dataverse's   | Ferry upsert of accounts, one
//!               limits scaled 30x in time: what they allow)      | application user
//! ```
//!
//! The SQL scenarios need the machine's PostgreSQL (127.0.0.1:5432, user postgres) and MariaDB
//! (127.0.0.1:3306, root); they use and drop the database `ferry_bench` on both. The odata scenario
//! needs nothing: the emulator runs in-process on loopback (`ferry-bench odata-ceiling` is the same
//! measurement for several users).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use ferry::run::{RunSettings, Status};
use ferry::spec::Pipeline;

use ferry_bench::data;

use crate::ceiling;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    PgInsert,
    PgUpsert,
    PgSync,
    PgSyncUnchanged,
    PgRead,
    PgArrow,
    PgArrowBlocks,
    MysqlInsert,
    MysqlRead,
    MysqlArrow,
    Odata,
}

pub(crate) const PG_TABLE: &str = "CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id int NOT NULL, \
    status text NOT NULL, description text NOT NULL, amount numeric(12,2) NOT NULL, \
    discount double precision NOT NULL, paid boolean NOT NULL, order_date date NOT NULL, \
    created_at timestamp NOT NULL, coupon text)";
const MY_TABLE: &str = "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id INT NOT NULL, \
    status VARCHAR(16) NOT NULL, description TEXT NOT NULL, amount DECIMAL(12,2) NOT NULL, \
    discount DOUBLE NOT NULL, paid BOOLEAN NOT NULL, order_date DATE NOT NULL, \
    created_at DATETIME(6) NOT NULL, coupon VARCHAR(16))";
const UPDATES: &str = "customer_id = EXCLUDED.customer_id, status = EXCLUDED.status, \
    description = EXCLUDED.description, amount = EXCLUDED.amount, discount = EXCLUDED.discount, \
    paid = EXCLUDED.paid, order_date = EXCLUDED.order_date, created_at = EXCLUDED.created_at, \
    coupon = EXCLUDED.coupon";

/// One scenario's measurements.
pub struct Compared {
    pub scenario: Scenario,
    pub reference: Vec<f64>,
    pub ferry: Vec<f64>,
}

impl Compared {
    pub fn ratios(&self) -> Vec<f64> {
        self.ferry
            .iter()
            .zip(&self.reference)
            .map(|(f, r)| f / r)
            .collect()
    }
}

/// The datasets: `rows` orders, an update set over the second half of them plus as many new, and
/// the first 90% of the orders as they are.
struct Data {
    rows: u64,
    base: PathBuf,
    update: PathBuf,
    unchanged: PathBuf,
    scratch: PathBuf,
}

/// The records of one odata run: at the scaled ceiling of 2,000 records/s, half a minute.
pub const ODATA_RECORDS: usize = 60_000;

pub fn compare(
    scenarios: &[Scenario],
    rows: u64,
    repeat: usize,
    root: &Path,
) -> Result<Vec<Compared>> {
    let sql = scenarios.iter().any(|s| *s != Scenario::Odata);
    let data = Data {
        rows,
        base: root.join(rows.to_string()),
        update: root.join(format!("{rows}-update")),
        unchanged: root.join(format!("{rows}-unchanged")),
        scratch: root.join("compare"),
    };
    if sql && !data.unchanged.join("orders.csv").exists() {
        let kept = rows / 10 * 9;
        let customers = data::customers(rows);
        data::write_orders_parquet_of(&data.unchanged.join("orders"), 0, kept, 8, 42, customers)?;
        data::write_orders_csv_of(&data.unchanged.join("orders.csv"), 0, kept, 42, customers)?;
    }
    for (dir, start, seed) in [(&data.base, 0, 42), (&data.update, rows / 2, 7)] {
        if sql && !dir.join("orders.csv").exists() {
            data::write_orders_parquet(&dir.join("orders"), start, rows, 8, seed)?;
            data::write_orders_csv(&dir.join("orders.csv"), start, rows, seed)?;
        }
    }
    std::fs::create_dir_all(&data.scratch)?;
    if sql {
        psql("postgres", "DROP DATABASE IF EXISTS ferry_bench")?;
        psql("postgres", "CREATE DATABASE ferry_bench")?;
        mysql(
            "DROP DATABASE IF EXISTS ferry_bench; CREATE DATABASE ferry_bench CHARACTER SET utf8mb4",
        )?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let mut all = Vec::new();
    for &scenario in scenarios {
        let mut compared = Compared {
            scenario,
            reference: Vec::new(),
            ferry: Vec::new(),
        };
        for round in 1..=repeat {
            let (rows, reference, ferry) = if scenario == Scenario::Odata {
                // One run gives both sides: the ceiling is worked out from the execution time the
                // emulator counted during the run itself.
                let share =
                    runtime.block_on(ceiling::measure(1, ODATA_RECORDS, 100, "batch", false))?;
                (share.records as u64, share.ceiling, share.achieved)
            } else {
                let reference = reference_run(scenario, &data)?;
                (
                    rows,
                    reference,
                    runtime.block_on(ferry_run(scenario, &data))?,
                )
            };
            println!(
                "bench: compare {} round={round} rows={rows} reference_rows_per_s={reference:.0} ferry_rows_per_s={ferry:.0} ratio={:.2}",
                name(scenario),
                ferry / reference
            );
            compared.reference.push(reference);
            compared.ferry.push(ferry);
        }
        all.push(compared);
    }
    if sql {
        psql("postgres", "DROP DATABASE IF EXISTS ferry_bench")?;
        mysql("DROP DATABASE IF EXISTS ferry_bench")?;
    }
    Ok(all)
}

pub fn name(s: Scenario) -> &'static str {
    match s {
        Scenario::PgInsert => "pg-insert",
        Scenario::PgUpsert => "pg-upsert",
        Scenario::PgSync => "pg-sync",
        Scenario::PgSyncUnchanged => "pg-sync-unchanged",
        Scenario::PgRead => "pg-read",
        Scenario::PgArrow => "pg-arrow",
        Scenario::PgArrowBlocks => "pg-arrow-blocks",
        Scenario::MysqlInsert => "mysql-insert",
        Scenario::MysqlRead => "mysql-read",
        Scenario::MysqlArrow => "mysql-arrow",
        Scenario::Odata => "odata",
    }
}

/// What the reference tool is, for the printed table.
pub fn reference_name(s: Scenario) -> &'static str {
    match s {
        Scenario::PgInsert => "psql \\copy FROM CSV",
        Scenario::PgUpsert => "\\copy to temp + INSERT ON CONFLICT",
        Scenario::PgSync => "the same + anti-join DELETE",
        Scenario::PgSyncUnchanged => "the same, 90% unchanged",
        Scenario::PgRead | Scenario::PgArrow | Scenario::PgArrowBlocks => {
            "psql \\copy (SELECT) TO CSV"
        }
        Scenario::MysqlInsert => "LOAD DATA LOCAL INFILE",
        Scenario::MysqlRead | Scenario::MysqlArrow => "mysql --batch --quick to TSV",
        Scenario::Odata => "the emulator's sustained ceiling",
    }
}

/// The reference tool's rows/s (the odata scenario has its own path in `compare`).
fn reference_run(scenario: Scenario, data: &Data) -> Result<f64> {
    let csv = data.base.join("orders.csv");
    let update = data.update.join("orders.csv");
    let rows = data.rows as f64;
    let timed = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
        let started = Instant::now();
        f()?;
        Ok(rows / started.elapsed().as_secs_f64())
    };
    match scenario {
        Scenario::PgInsert => {
            pg_fresh()?;
            timed(&|| {
                psql(
                    "ferry_bench",
                    &format!("\\copy orders FROM '{}' CSV HEADER", csv.display()),
                )
            })
        }
        Scenario::PgUpsert | Scenario::PgSync | Scenario::PgSyncUnchanged => {
            pg_loaded(data)?;
            let update = if scenario == Scenario::PgSyncUnchanged {
                data.unchanged.join("orders.csv")
            } else {
                update
            };
            let delete = if scenario != Scenario::PgUpsert {
                "DELETE FROM orders o WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.order_id = o.order_id);"
            } else {
                ""
            };
            let script = format!(
                "BEGIN;\nCREATE TEMP TABLE s (LIKE orders) ON COMMIT DROP;\n\\copy s FROM '{}' CSV HEADER\n\
                 INSERT INTO orders SELECT * FROM s ON CONFLICT (order_id) DO UPDATE SET {UPDATES};\n{delete}\nCOMMIT;\n",
                update.display()
            );
            let file = data.scratch.join("reference.sql");
            std::fs::write(&file, script)?;
            timed(&|| psql_file("ferry_bench", &file))
        }
        Scenario::PgRead | Scenario::PgArrow | Scenario::PgArrowBlocks => {
            pg_loaded(data)?;
            let out = data.scratch.join("from-pg.csv");
            timed(&|| {
                psql(
                    "ferry_bench",
                    &format!(
                        "\\copy (SELECT * FROM orders) TO '{}' CSV HEADER",
                        out.display()
                    ),
                )
            })
        }
        Scenario::MysqlInsert => {
            my_fresh()?;
            timed(&|| mysql(&my_load(&csv)))
        }
        Scenario::MysqlRead | Scenario::MysqlArrow => {
            my_loaded(data)?;
            let out = data.scratch.join("from-mysql.tsv");
            timed(&|| {
                let file = std::fs::File::create(&out)?;
                run(Command::new("mysql")
                    .args(["-h127.0.0.1", "-uroot", "--batch", "--quick", "-e"])
                    .arg("SELECT * FROM ferry_bench.orders")
                    .stdout(file))
            })
        }
        Scenario::Odata => bail!("the odata scenario is measured whole by ceiling::measure"),
    }
}

async fn ferry_run(scenario: Scenario, data: &Data) -> Result<f64> {
    let pg = "[connections.db]\nurl = \"postgres://postgres@127.0.0.1:5432/ferry_bench\"\n";
    let my = "[connections.db]\nurl = \"mysql://root@127.0.0.1:3306/ferry_bench\"\n";
    let source = |dir: &Path| {
        format!(
            "[sources.orders]\npath = \"{}/orders/*.parquet\"\n",
            dir.display()
        )
    };
    let target = |mode: &str, workers: usize| {
        format!(
            "[target]\nconnection = \"db\"\ntable = \"orders\"\nmode = \"{mode}\"\nkey = [\"order_id\"]\nbatch_size = 20000\nworkers = {workers}\n"
        )
    };
    let text = match scenario {
        Scenario::PgInsert => {
            pg_fresh()?;
            format!("{pg}{}{}", source(&data.base), target("insert", 2))
        }
        Scenario::PgUpsert | Scenario::PgSync => {
            pg_loaded(data)?;
            let mode = if scenario == Scenario::PgSync {
                "sync"
            } else {
                "upsert"
            };
            format!("{pg}{}{}", source(&data.update), target(mode, 2))
        }
        Scenario::PgSyncUnchanged => {
            pg_loaded(data)?;
            format!("{pg}{}{}", source(&data.unchanged), target("sync", 2))
        }
        Scenario::PgRead => {
            pg_loaded(data)?;
            format!("{pg}{}", table_to_parquet(data, "from-pg"))
        }
        Scenario::MysqlInsert => {
            my_fresh()?;
            format!("{my}{}{}", source(&data.base), target("insert", 3))
        }
        Scenario::MysqlRead => {
            my_loaded(data)?;
            format!("{my}{}", table_to_parquet(data, "from-mysql"))
        }
        Scenario::PgArrow => {
            pg_loaded(data)?;
            format!("{pg}{}", table_to_arrow(data, "from-pg", "order_id"))
        }
        Scenario::PgArrowBlocks => {
            pg_loaded(data)?;
            format!("{pg}{}", table_to_arrow(data, "from-pg", "ctid"))
        }
        Scenario::MysqlArrow => {
            my_loaded(data)?;
            format!("{my}{}", table_to_arrow(data, "from-mysql", "order_id"))
        }
        Scenario::Odata => bail!("the odata scenario is measured whole by ceiling::measure"),
    };
    let text = format!(
        r#"name = "compare-{}"
state_dir = "{}/state"
{text}"#,
        name(scenario),
        data.scratch.display()
    );
    let pipeline = Pipeline::parse(&data.scratch.join("compare.toml"), &text)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let report = ferry::run::run(
        &pipeline,
        &RunSettings {
            progress: false,
            fresh: true,
            confirmed: true,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if report.status != Status::Completed {
        bail!("Ferry's {} run did not complete:\n{report}", name(scenario));
    }
    Ok(data.rows as f64 / started.elapsed().as_secs_f64())
}

fn pg_fresh() -> Result<()> {
    psql("ferry_bench", "DROP TABLE IF EXISTS orders")?;
    psql("ferry_bench", PG_TABLE)?;
    psql("ferry_bench", "CHECKPOINT")
}

/// The table holding the base rows, as a reference \copy loads them.
fn pg_loaded(data: &Data) -> Result<()> {
    pg_fresh()?;
    psql(
        "ferry_bench",
        &format!(
            "\\copy orders FROM '{}' CSV HEADER",
            data.base.join("orders.csv").display()
        ),
    )?;
    psql("ferry_bench", "VACUUM ANALYZE orders")?;
    psql("ferry_bench", "CHECKPOINT")
}

fn my_fresh() -> Result<()> {
    mysql(&format!(
        "USE ferry_bench; DROP TABLE IF EXISTS orders; {MY_TABLE}"
    ))
}

/// Every read scenario's source: the orders table read on two connections, in ranges of `column`
/// (its key, or `ctid`: its blocks).
fn orders_in_two_ranges_of(column: &str) -> String {
    format!(
        "[sources.orders]\nconnection = \"db\"\ntable = \"orders\"\npartitions = 2\npartition_column = \"{column}\"\n"
    )
}

/// The read scenarios' source and target: the orders table in two partitions into
/// `scratch/<file>.parquet`.
fn table_to_parquet(data: &Data, file: &str) -> String {
    format!(
        "{}[target]\npath = \"{}/{file}.parquet\"\nmode = \"truncate\"\n",
        orders_in_two_ranges_of("order_id"),
        data.scratch.display()
    )
}

/// The Arrow read scenarios: the orders table in two ranges of `column`, every column of every row
/// decoded into Arrow and folded by one step into a one-row summary (`scratch/<file>-sums.csv`), so
/// that what is timed is the read, not a file's encoding.
fn table_to_arrow(data: &Data, file: &str, column: &str) -> String {
    format!(
        "{}[[steps]]\nname = \"sums\"\nsql = \"SELECT count(*) AS orders, sum(order_id) AS ids, \
         sum(customer_id) AS customers, max(status) AS status, sum(length(description)) AS text, \
         sum(amount) AS amount, sum(discount) AS discount, sum(CASE WHEN paid THEN 1 ELSE 0 END) AS paid, \
         max(order_date) AS last_day, max(created_at) AS last_time, count(coupon) AS coupons FROM orders\"\n\
         [target]\npath = \"{}/{file}-sums.csv\"\nmode = \"truncate\"\n",
        orders_in_two_ranges_of(column),
        data.scratch.display()
    )
}

/// LOAD DATA of an orders CSV file (the reference of mysql-insert).
fn my_load(csv: &Path) -> String {
    format!(
        "USE ferry_bench; LOAD DATA LOCAL INFILE '{}' INTO TABLE orders FIELDS TERMINATED BY ',' \
         OPTIONALLY ENCLOSED BY '\"' IGNORE 1 LINES (order_id, customer_id, status, description, \
         amount, discount, @paid, order_date, created_at, @coupon) \
         SET paid = (@paid = 'true'), coupon = NULLIF(@coupon, '')",
        csv.display()
    )
}

/// The table holding the base rows, as LOAD DATA loads them.
fn my_loaded(data: &Data) -> Result<()> {
    my_fresh()?;
    mysql(&my_load(&data.base.join("orders.csv")))?;
    mysql("ANALYZE TABLE ferry_bench.orders")
}

pub(crate) fn psql(db: &str, command: &str) -> Result<()> {
    psql_run(db, "-c", command.as_ref())
}

fn psql_file(db: &str, file: &Path) -> Result<()> {
    psql_run(db, "-f", file.as_os_str())
}

/// psql on `db` with one `-c COMMAND` or `-f FILE`, stopping at the first error.
fn psql_run(db: &str, flag: &str, arg: &std::ffi::OsStr) -> Result<()> {
    run(Command::new("psql")
        .args([
            "-q",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            flag,
        ])
        .arg(arg))
}

fn mysql(command: &str) -> Result<()> {
    run(Command::new("mysql")
        .args(["-h127.0.0.1", "-uroot", "--local-infile=1", "-e"])
        .arg(command))
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
