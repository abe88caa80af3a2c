//! No secret, in any form a user can write it, reaches any output: two canary secrets (a database
//! password and an OData client secret, both `${VAR}`s) go through every command a user runs, at
//! the highest verbosity, through a run with a rejected row and a run that fails; then the terminal
//! output of each, and every file the runs left (bookkeeping Delta tables, history, log, quarantine,
//! the Excel export), are searched for them.

use std::process::Command;

use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, ferry_command};

const PASSWORD: &str = "canary-pw-5b1c9e";
const CLIENT_SECRET: &str = "canary-cs-7d2f4a";

/// Runs `ferry <args>` with the canaries in its environment; its stdout and stderr together.
fn ferry(ws: &Workspace, args: &[&str]) -> String {
    let out = ferry_command()
        .current_dir(ws.path())
        .env("FERRY_TEST_DB_PASSWORD", PASSWORD)
        .env("FERRY_TEST_CLIENT_SECRET", CLIENT_SECRET)
        .env("RUST_LOG", "trace")
        .args(args)
        .output()
        .expect("ferry runs");
    format!(
        "$ ferry {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_canary(what: &str, text: &str) {
    for canary in [PASSWORD, CLIENT_SECRET] {
        assert!(!text.contains(canary), "{what} holds a secret:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_terminal_the_tables_or_the_exports() {
    let emu = ferry_tests::quiet_emulator().await;
    let db = TestDb::new(Server::Postgres).await;
    // One row the service refuses (no name): a quarantined row and an Excel export.
    db.exec(
        "CREATE TABLE src (accountnumber text, name text); INSERT INTO src VALUES ('A-1', 'a'), ('A-2', NULL), ('A-3', 'c')",
    )
    .await;
    let ws = Workspace::new();
    let pipeline = |name: &str, token_url: &str| {
        format!(
            r#"name = "{name}"

[connections.db]
url = "{db}"
password = "${{FERRY_TEST_DB_PASSWORD}}"

[connections.crm]
url = "{crm}"
auth = "client_credentials"
token_url = "{token_url}"
client_id = "app"
client_secret = "${{FERRY_TEST_CLIENT_SECRET}}"

[sources.src]
connection = "db"
query = "SELECT accountnumber, name FROM src"

[target]
connection = "crm"
table = "accounts"
mode = "upsert"
key = "accountnumber"
"#,
            db = db.url(),
            crm = emu.url(),
        )
    };
    ws.write("good.toml", pipeline("good", &emu.token_url()));
    // A token endpoint that does not answer: the run fails, and its error is printed too.
    ws.write(
        "failing.toml",
        pipeline("failing", "http://127.0.0.1:9/oauth2/v2.0/token"),
    );
    let mut transcript = String::new();
    for args in [
        vec!["validate", "good.toml"],
        vec!["-vv", "run", "good.toml"],
        vec!["-vv", "run", "--dry-run", "good.toml"],
        vec!["preview", "good.toml"],
        vec!["log", "good.toml"],
        vec!["log", "good.toml", "--json"],
        vec!["history", "good.toml"],
        vec!["quarantine", "list", "good.toml"],
        vec!["quarantine", "show", "good.toml", "--json"],
        vec![
            "quarantine",
            "export",
            "good.toml",
            "accounts",
            "rejected.xlsx",
        ],
        vec!["-vv", "quarantine", "retry", "good.toml", "accounts"],
        vec!["-vv", "run", "failing.toml"],
        vec!["history", "failing.toml", "--json"],
    ] {
        let out = ferry(&ws, &args);
        assert_no_canary(&format!("ferry {}", args.join(" ")), &out);
        transcript.push_str(&out);
    }
    // The runs did what they say, so the outputs searched are the real ones.
    assert!(transcript.contains("Partial Success"), "{transcript}");
    assert!(transcript.contains("required attribute"), "{transcript}");
    assert!(ws.join("rejected.xlsx").exists(), "{transcript}");
    let files = ferry_tests::files_under(ws.path());
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/history/")),
        "bookkeeping was written: {files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert_no_canary(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
    emu.stop().await;
}

/// The pipeline's own Debug (what a panic or a trace could print) masks every secret.
#[test]
fn a_pipelines_debug_masks_its_secrets() {
    let ws = Workspace::new();
    let text = r#"name = "debug"
[connections.db]
url = "postgres://loader@db.example.com/shop"
password = "${FERRY_TEST_DEBUG_PASSWORD}"
[connections.crm]
url = "https://crm.example.com/api/data/v9.2"
auth = "bearer"
token = "${FERRY_TEST_DEBUG_TOKEN}"
[sources.src]
connection = "db"
table = "orders"
[target]
connection = "crm"
table = "accounts"
"#;
    let path = ws.write("p.toml", text);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "secrets::debug_of_pipeline",
            "--nocapture",
            "--ignored",
        ])
        .env("FERRY_TEST_DEBUG_PASSWORD", PASSWORD)
        .env("FERRY_TEST_DEBUG_TOKEN", CLIENT_SECRET)
        .env("FERRY_TEST_DEBUG_PIPELINE", &path)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("shop"),
        "the child printed the pipeline: {printed}"
    );
    assert_no_canary("the pipeline's Debug", &printed);
}

/// Run by `a_pipelines_debug_masks_its_secrets` in a child process with the variables set.
#[test]
#[ignore = "a helper: run by a_pipelines_debug_masks_its_secrets"]
fn debug_of_pipeline() {
    let Ok(path) = std::env::var("FERRY_TEST_DEBUG_PIPELINE") else {
        return;
    };
    let pipeline = ferry::spec::Pipeline::load(std::path::Path::new(&path)).unwrap();
    println!("{pipeline:#?}");
}
