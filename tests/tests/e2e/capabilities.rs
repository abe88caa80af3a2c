//! Every connector's `capabilities()` against what its target really does: each mode it lists runs
//! twice and leaves the rows that mode means; each mode it does not list is refused at the `mode`
//! line before anything runs; a target that says it reads is read back by a source, one that does
//! not is refused; quarantine retry is refused exactly where the capabilities say so.
//! A connector added to the registry without a case here fails `every_connector_is_tested`.

use ferry::run::Status;
use ferry::spec::Pipeline;
use ferry_connectors::{WriteMode, registry};
use ferry_emulator::Running;
use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, rows, run};

const FIRST: &str = "accountnumber,name\nA-1,a\nA-2,b\nA-3,c\n";
const SECOND: &str = "accountnumber,name\nA-2,B\nA-3,c\nA-4,d\n";

/// The rows each mode must leave after FIRST then SECOND (accountnumber, name).
fn expected(mode: WriteMode, keyed: bool) -> Vec<Vec<String>> {
    match (mode, keyed) {
        (WriteMode::Insert, true) => {
            rows(&[&["A-1", "a"], &["A-2", "b"], &["A-3", "c"], &["A-4", "d"]])
        }
        // Without a key, insert appends every row.
        (WriteMode::Insert, false) => rows(&[
            &["A-1", "a"],
            &["A-2", "b"],
            &["A-3", "c"],
            &["A-2", "B"],
            &["A-3", "c"],
            &["A-4", "d"],
        ]),
        (WriteMode::Upsert, _) => {
            rows(&[&["A-1", "a"], &["A-2", "B"], &["A-3", "c"], &["A-4", "d"]])
        }
        (WriteMode::Truncate | WriteMode::Sync, _) => {
            rows(&[&["A-2", "B"], &["A-3", "c"], &["A-4", "d"]])
        }
    }
}

/// Where one connector's target lives for one mode, and how to read it back.
enum Place {
    Server(TestDb),
    Sqlite,
    OData(Running),
    Delta,
    Parquet,
}

impl Place {
    async fn new(connector: &str) -> Self {
        match connector {
            "PostgreSQL" => Place::Server(TestDb::new(Server::Postgres).await),
            "MySQL" => Place::Server(TestDb::new(Server::Mysql).await),
            "SQLite" => Place::Sqlite,
            "OData" => Place::OData(ferry_tests::quiet_emulator().await),
            "Delta table" => Place::Delta,
            "Parquet or CSV file" => Place::Parquet,
            other => panic!("no test case for the connector {other}: add one to capabilities.rs"),
        }
    }

    /// The `[connections.t]` table (when the target has one) and the `[target]` keys saying where.
    fn toml(&self) -> (String, String) {
        let conn = |url: String, more: &str| format!("[connections.t]\nurl = \"{url}\"\n{more}");
        let table = "connection = \"t\"\ntable = \"accounts\"\n".to_string();
        match self {
            Place::Server(db) => (conn(db.url(), ""), table),
            Place::Sqlite => (conn("sqlite://t.db".into(), ""), table),
            Place::OData(emu) => (
                conn(
                    emu.url(),
                    &format!(
                        "kind = \"dataverse\"\nauth = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"app\"\nclient_secret = \"x\"\n",
                        emu.token_url()
                    ),
                ),
                table,
            ),
            Place::Delta => (String::new(), "path = \"out/accounts/\"\n".into()),
            Place::Parquet => (String::new(), "path = \"out/accounts.parquet\"\n".into()),
        }
    }

    async fn rows(&self, ws: &Workspace) -> Vec<Vec<String>> {
        match self {
            Place::Server(db) => db.rows("SELECT accountnumber, name FROM accounts").await,
            Place::Sqlite => ferry_tests::sqlite_rows(
                &ws.join("t.db"),
                "SELECT accountnumber, name FROM accounts",
            ),
            Place::OData(emu) => {
                let mut found: Vec<Vec<String>> = ferry_tests::odata_records(
                    &emu.url(),
                    &emu.token_url(),
                    "accounts",
                    "accountnumber,name",
                )
                .await
                .iter()
                .map(|r| {
                    vec![
                        r["accountnumber"].as_str().unwrap_or_default().to_string(),
                        r["name"].as_str().unwrap_or_default().to_string(),
                    ]
                })
                .collect();
                found.sort();
                found
            }
            Place::Delta => {
                ferry_tests::read_delta(
                    &ws.join("out/accounts"),
                    "SELECT accountnumber, name FROM t",
                )
                .await
                .1
            }
            Place::Parquet => ferry_tests::parquet_rows(&ws.join("out/accounts.parquet")).await,
        }
    }
}

fn pipeline_text(place: &Place, mode: WriteMode, keyed: bool) -> String {
    let (connection, target) = place.toml();
    let key = if keyed {
        "key = \"accountnumber\"\n"
    } else {
        ""
    };
    format!(
        r#"name = "capabilities"
{connection}
[sources.src]
path = "in/src.csv"

[target]
{target}mode = "{mode}"
{key}create = true
batch_size = 2
"#
    )
}

/// Runs every mode of `connector` and checks its capabilities against the target's rows.
async fn check(connector: &str) {
    let found = registry::connectors()
        .iter()
        .find(|c| c.name() == connector)
        .unwrap_or_else(|| panic!("{connector} is not in the registry"));
    let can = found.capabilities();
    for mode in [
        WriteMode::Insert,
        WriteMode::Upsert,
        WriteMode::Truncate,
        WriteMode::Sync,
    ] {
        let ws = Workspace::new();
        let place = Place::new(connector).await;
        let keyed = can.keyed;
        let text = pipeline_text(&place, mode, keyed || mode.needs_key());
        if !can.modes.contains(&mode) {
            let path = ws.write("p.toml", &text);
            let errors = Pipeline::load(&path)
                .expect_err("a mode it does not list")
                .to_string();
            let mode_line = text.lines().position(|l| l.starts_with("mode =")).unwrap() + 1;
            assert!(
                errors.contains(&format!("p.toml:{mode_line}:8: "))
                    && errors.contains("takes mode"),
                "{connector} {mode}: {errors}"
            );
            continue;
        }
        let pipeline = ws.pipeline("p.toml", &text);
        // A truncate that empties the target first asks to be confirmed (--yes).
        let settings = ferry::run::RunSettings {
            confirmed: true,
            ..Default::default()
        };
        for input in [FIRST, SECOND] {
            ws.write("in/src.csv", input);
            let report = ferry::run::run(&pipeline, &settings)
                .await
                .unwrap_or_else(|e| panic!("{connector} {mode}: {e}"));
            assert_eq!(
                report.status,
                Status::Completed,
                "{connector} {mode}: {report}"
            );
        }
        assert_eq!(
            place.rows(&ws).await,
            expected(mode, keyed),
            "{connector} {mode}"
        );
        // Reading: a source on the same connection gets the rows back, or is refused at its line.
        if mode == WriteMode::Upsert || !can.keyed {
            check_reads(connector, &place, &ws, can.reads, mode, keyed).await;
        }
        // Quarantine retry: refused for a target that is rewritten whole.
        let retried =
            ferry::run::retry::retry(&pipeline, &pipeline.target.destination.name(), None).await;
        let refused = retried
            .as_ref()
            .err()
            .is_some_and(|e| e.message.contains("rewritten whole"));
        assert_eq!(
            refused,
            !can.retries_rows,
            "{connector} {mode}: {:?}",
            retried.err()
        );
    }
}

async fn check_reads(
    connector: &str,
    place: &Place,
    ws: &Workspace,
    reads: bool,
    mode: WriteMode,
    keyed: bool,
) {
    let (connection, _) = place.toml();
    if connection.is_empty() {
        return;
    }
    let text = format!(
        r#"name = "read-back"
{connection}
[sources.back]
connection = "t"
table = "accounts"

[target]
path = "out/back.parquet"
mode = "truncate"
"#
    );
    let path = ws.write("back.toml", &text);
    match Pipeline::load(&path) {
        Ok(back) => {
            assert!(reads, "{connector} says it cannot be read, and was");
            assert_eq!(run(&back).await.status, Status::Completed);
            let got: Vec<Vec<String>> = ferry_tests::datafusion_rows(
                &[("t", &ws.join("out/back.parquet"))],
                "SELECT accountnumber, name FROM t",
            )
            .await;
            assert_eq!(got, expected(mode, keyed), "{connector} read back");
        }
        Err(e) => {
            assert!(!reads, "{connector} says it reads: {e}");
            let e = e.to_string();
            let line = text
                .lines()
                .position(|l| l == "connection = \"t\"")
                .unwrap()
                + 1;
            assert!(
                e.contains(&format!("back.toml:{line}:14: "))
                    && e.contains("which Ferry does not read"),
                "{e}"
            );
        }
    }
}

#[test]
fn every_connector_is_tested() {
    let tested = [
        "PostgreSQL",
        "MySQL",
        "SQLite",
        "OData",
        "Delta table",
        "Parquet or CSV file",
    ];
    for c in registry::connectors() {
        assert!(
            tested.contains(&c.name()),
            "{} has no capabilities test: add it to capabilities.rs",
            c.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_does_what_its_capabilities_say() {
    check("PostgreSQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_does_what_its_capabilities_say() {
    check("MySQL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_does_what_its_capabilities_say() {
    check("SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odata_does_what_its_capabilities_say() {
    check("OData").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_does_what_its_capabilities_say() {
    check("Delta table").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_do_what_their_capabilities_say() {
    check("Parquet or CSV file").await;
}
