//! The end-to-end tests' context: a temporary folder per test with pipeline files and data in it, runs
//! of real pipelines, and readers that bring the target's rows back as sorted text rows so that whole
//! tables can be compared.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use ferry::run::{RunReport, RunSettings};
use ferry::spec::Pipeline;
use tempfile::TempDir;

pub mod azure;
pub mod browser;
pub mod db;
pub mod fuzz;
pub mod s3;
pub mod servers;

/// Expected rows written as text, sorted like [`sqlite_rows`] and [`batch_rows`] sort theirs.
pub fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
    let mut r: Vec<Vec<String>> = v
        .iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    r.sort();
    r
}

/// A temporary folder that holds one test's pipeline files, data and targets.
pub struct Workspace {
    dir: TempDir,
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("ferry-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating its folders) and returns its path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Copies the project's folder `rel` (relative to the repository root) into the workspace.
    pub fn copy_from_repo(&self, rel: &str) -> PathBuf {
        let from = repo_root().join(rel);
        let to = self.join(rel);
        copy_dir(&from, &to);
        to
    }

    /// Writes a pipeline file and loads it; panics with the errors when it is invalid.
    pub fn pipeline(&self, rel: &str, toml: &str) -> Pipeline {
        let path = self.write(rel, toml);
        Pipeline::load(&path)
            .unwrap_or_else(|e| panic!("invalid pipeline {rel}:\n{e}\n---\n{toml}"))
    }
}

/// Runs a pipeline in-process; panics if it cannot start.
pub async fn run(pipeline: &Pipeline) -> RunReport {
    ferry::run::run(pipeline, &RunSettings::default())
        .await
        .unwrap_or_else(|e| panic!("pipeline {} did not start:\n{e}", pipeline.name))
}

/// The Dataverse-like emulator on a free loopback port, without limits or latency: a target that
/// answers at once, for tests about what lands rather than about throttling.
pub async fn quiet_emulator() -> ferry_emulator::Running {
    let config = ferry_emulator::Config {
        limits: ferry_emulator::limits::Limits::off(),
        latency: ferry_emulator::Latency::none(),
        ..ferry_emulator::Config::default()
    };
    ferry_emulator::start(config, "127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the emulator starts")
}

/// The emulator serving `model` (its TOML) without sign-in, limits or latency: for tests about
/// what a model's types and keys do to what lands.
pub async fn open_emulator(model: &str) -> ferry_emulator::Running {
    let model = ferry_emulator::model::Model::from_toml(model).expect("a valid model");
    ferry_emulator::start(
        ferry_emulator::Config {
            model,
            auth: false,
            limits: ferry_emulator::limits::Limits::off(),
            latency: ferry_emulator::Latency::none(),
            ..ferry_emulator::Config::default()
        },
        "127.0.0.1:0".parse().expect("an address"),
    )
    .await
    .expect("the emulator starts")
}

/// The emulator's built-in model (accounts, contacts) without sign-in, limits or latency: for tests
/// about what lands and what is read back, not about the service's limits.
pub async fn anonymous_emulator() -> ferry_emulator::Running {
    ferry_emulator::start(
        ferry_emulator::Config {
            auth: false,
            limits: ferry_emulator::limits::Limits::off(),
            latency: ferry_emulator::Latency::none(),
            ..ferry_emulator::Config::default()
        },
        "127.0.0.1:0".parse().expect("an address"),
    )
    .await
    .expect("the emulator starts")
}

/// The emulator's counters (`/_emulator/stats`): per client and in total, and records per set.
pub async fn emulator_stats(emu: &ferry_emulator::Running) -> serde_json::Value {
    reqwest::get(format!("http://{}/_emulator/stats", emu.addr))
        .await
        .expect("the emulator answers")
        .json()
        .await
        .expect("its stats")
}

/// The `ferry` binary that `cargo test --workspace` builds beside the test binaries, as a user runs it.
pub fn ferry_command() -> std::process::Command {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin: PathBuf = dir.join("ferry");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    std::process::Command::new(bin)
}

/// Runs the `ferry` binary with `args`; returns (exit code, stdout then stderr).
pub fn ferry_output(args: &[&str]) -> (i32, String) {
    let out = ferry_command().args(args).output().expect("ferry runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Every record of an entity set of the emulator (`service` its root URL, `token_url` its token
/// endpoint) with the `select`ed attributes, through the Web API's pages, as any client reads them.
pub async fn odata_records(
    service: &str,
    token_url: &str,
    set: &str,
    select: &str,
) -> Vec<serde_json::Value> {
    let c = reqwest::Client::new();
    let token = odata_token(token_url).await;
    let mut out = Vec::new();
    let mut next = Some(format!("{service}/{set}?$select={select}"));
    while let Some(url) = next {
        let page: serde_json::Value = c
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("the service answers")
            .json()
            .await
            .expect("a page");
        out.extend(page["value"].as_array().expect("records").iter().cloned());
        next = page["@odata.nextLink"].as_str().map(String::from);
    }
    out
}

/// A bearer token from the emulator's token endpoint, for a reader of the tests' own.
pub async fn odata_token(token_url: &str) -> String {
    let token: serde_json::Value = reqwest::Client::new()
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "reader"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("a token");
    token["access_token"].as_str().expect("a token").to_string()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The rows of a SQLite query as text, sorted; numbers normalised so 12.5 and 12.50 compare equal.
pub fn sqlite_rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("{}: {e}", db.display()));
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let ncols = stmt.column_count();
    let mut rows: Vec<Vec<String>> = stmt
        .query_map([], |r| {
            (0..ncols)
                .map(|i| {
                    let v: rusqlite::types::Value = r.get(i)?;
                    Ok(match v {
                        rusqlite::types::Value::Null => "NULL".to_string(),
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Real(f) => f.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        rusqlite::types::Value::Blob(b) => format!("{b:?}"),
                    })
                })
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .expect("query")
        .map(|r| r.expect("row").into_iter().map(normalise).collect())
        .collect();
    rows.sort();
    rows
}

/// A workbook's first sheet: its header and its rows as text (see [`batch_rows`]; empty cells read
/// "NULL").
pub fn read_workbook(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let name = path.file_name().expect("a file").to_string_lossy();
    let bytes = std::fs::read(path).expect("the workbook");
    let (schema, batches) =
        ferry_connectors::files::xlsx::read_sheet(&name, bytes, None).expect("a readable sheet");
    let header = schema.fields().iter().map(|f| f.name().clone()).collect();
    (header, batch_rows(&batches))
}

/// Saves rows as a person would in Excel: the header, then the rows, the `numeric` columns as
/// numbers and the rest as text; "NULL" cells are left empty.
pub fn write_workbook(path: &Path, header: &[String], rows: &[Vec<String>], numeric: &[usize]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, name) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, name).expect("header cell");
    }
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, value) in row.iter().enumerate().filter(|(_, v)| *v != "NULL") {
            let c = c as u16;
            if numeric.contains(&(c as usize)) {
                let number: f64 = value.parse().expect("a number");
                sheet.write_number(r, c, number).expect("cell");
            } else {
                sheet.write_string(r, c, value).expect("cell");
            }
        }
    }
    book.save(path).expect("save the workbook");
}

/// Record batches as text rows, sorted, numbers normalised like [`sqlite_rows`].
pub fn batch_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = exact_rows(batches)
        .into_iter()
        .map(|row| row.into_iter().map(normalise).collect())
        .collect();
    rows.sort();
    rows
}

/// Record batches as text rows exactly as Arrow prints them (every digit), in their order.
pub fn exact_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    rows
}

/// Runs SQL in a fresh DataFusion session with the given parquet/CSV files registered; the rows
/// sorted and numbers normalised (see [`batch_rows`]).
pub async fn datafusion_rows(tables: &[(&str, &Path)], sql: &str) -> Vec<Vec<String>> {
    batch_rows(&datafusion_batches(tables, sql).await)
}

/// Runs SQL as [`datafusion_rows`] does; the rows in the query's order, every digit kept.
pub async fn datafusion_exact(tables: &[(&str, &Path)], sql: &str) -> Vec<Vec<String>> {
    exact_rows(&datafusion_batches(tables, sql).await)
}

async fn datafusion_batches(tables: &[(&str, &Path)], sql: &str) -> Vec<RecordBatch> {
    let ctx = datafusion::prelude::SessionContext::new();
    for (name, path) in tables {
        let p = path.to_str().expect("utf-8 path");
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => ctx
                .register_csv(*name, p, Default::default())
                .await
                .expect("csv"),
            _ => ctx
                .register_parquet(*name, p, Default::default())
                .await
                .expect("parquet"),
        }
    }
    ctx.sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("collect")
}

/// The rows of a parquet file or folder, sorted text.
pub async fn parquet_rows(path: &Path) -> Vec<Vec<String>> {
    datafusion_rows(&[("t", path)], "SELECT * FROM t").await
}

fn normalise(cell: String) -> String {
    match cell.parse::<f64>() {
        Ok(f) if cell.contains('.') => {
            let s = format!("{f:.6}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        _ => cell,
    }
}

/// Reads a Delta table (bookkeeping, quarantine) with DataFusion's Delta provider, as any other reader
/// would: the schema and the rows of `sql` over it, registered as `t`.
pub async fn read_delta(
    location: &Path,
    sql: &str,
) -> (arrow::datatypes::SchemaRef, Vec<Vec<String>>) {
    let table =
        deltalake::open_table(deltalake::ensure_table_uri(location.to_str().unwrap()).unwrap())
            .await
            .unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", table.table_provider().await.unwrap())
        .unwrap();
    let df = ctx.sql(sql).await.unwrap();
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    (schema, batch_rows(&df.collect().await.unwrap()))
}

/// Every file under `dir`, in its subfolders too.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The files under `dir` whose bytes hold `needle` (a secret that must not be there).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .collect()
}

/// Runs `ferry ARGS` until it pauses at `point` (`FERRY_PAUSE_AT`, e.g. `batch_written:2`), then
/// kills it with SIGKILL, as a crash would.
pub fn kill_at(args: &[&str], point: &str) {
    let mut command = ferry_command();
    command.args(args);
    let mut child = start_paused(command, point)
        .unwrap_or_else(|said| panic!("ferry {args:?} never reached {point}: {said}"));
    child.kill().expect("kill");
    child.wait().expect("wait");
}

/// Starts `command` with `FERRY_PAUSE_AT=point` and returns the process once it has paused there
/// (for the test to kill), or, when it ended without reaching the point, what it wrote to stderr.
pub fn start_paused(
    mut command: std::process::Command,
    point: &str,
) -> Result<std::process::Child, String> {
    use std::io::BufRead;
    let mut child = command
        .env("FERRY_PAUSE_AT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ferry starts");
    let stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let mut said = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap_or_default();
        if line.starts_with("ferry: paused at") {
            return Ok(child);
        }
        said.push(line);
    }
    let _ = child.wait();
    Err(said.join("\n"))
}
