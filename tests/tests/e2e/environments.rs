//! Environments and promotion (issue 17), end to end through the `ferry` binary: three
//! environments whose CRM is SQLite (dev), PostgreSQL (test) and the Dataverse-like emulator
//! (prod), one legacy PostgreSQL source whose password is a secret, and a canary secret in dev that
//! must reach no file of the project, no output and no history row.

use std::path::{Path, PathBuf};

use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, ferry_output, rows, sqlite_rows};

/// dev's password for the legacy database: it must never leave dev's secrets file.
const CANARY: &str = "canary-6b1f0e-never-copy-me";

struct Project {
    ws: Workspace,
    /// Outside the project: the secrets files.
    secrets: Workspace,
    legacy: TestDb,
    test_crm: TestDb,
    emulator: ferry_emulator::Running,
    /// Every line Ferry printed, for the canary check.
    printed: std::cell::RefCell<String>,
}

impl Project {
    async fn new(extra_environments: &str) -> Project {
        let ws = Workspace::new();
        let secrets = Workspace::new();
        let legacy = TestDb::new(Server::Postgres).await;
        legacy
            .exec("CREATE TABLE customers (code text PRIMARY KEY, name text NOT NULL); INSERT INTO customers VALUES ('C-001', 'Acme'), ('C-002', 'Globex'), ('C-003', 'Initech')")
            .await;
        let test_crm = TestDb::new(Server::Postgres).await;
        test_crm
            .exec("CREATE TABLE accounts (accountnumber text PRIMARY KEY, name text)")
            .await;
        let emulator = ferry_tests::quiet_emulator().await;
        let dev_db = ws.join("dev-crm.db");
        rusqlite::Connection::open(&dev_db)
            .unwrap()
            .execute_batch("CREATE TABLE accounts (accountnumber TEXT PRIMARY KEY, name TEXT)")
            .unwrap();
        for (env, secret) in [
            ("dev", CANARY),
            ("test", "test-password"),
            ("prod", "prod-password"),
        ] {
            secrets.write(
                &format!("{env}.secrets.toml"),
                format!("legacy_password = \"{secret}\"\ncrm_secret = \"{env}-app-secret\"\n"),
            );
        }
        let secrets_file = |env: &str| {
            secrets
                .join(&format!("{env}.secrets.toml"))
                .display()
                .to_string()
        };
        ws.write(
            "project/environments.toml",
            format!(
                r#"[environments.dev]
secrets_file = "{}"
[environments.dev.vars]
legacy_url = "{legacy}"
crm_url = "sqlite://{}"

[environments.test]
secrets_file = "{}"
[environments.test.vars]
legacy_url = "{legacy}"

[environments.prod]
secrets_file = "{}"
[environments.prod.vars]
legacy_url = "{legacy}"
service = "{}"
token_url = "{}"
{extra_environments}"#,
                secrets_file("dev"),
                dev_db.display(),
                secrets_file("test"),
                secrets_file("prod"),
                emulator.url(),
                emulator.token_url(),
                legacy = legacy.url(),
            ),
        );
        let legacy_connection =
            "url = \"${vars.legacy_url}\"\npassword = \"${secret.legacy_password}\"\n";
        ws.write(
            "project/environments/dev/connections/legacy.toml",
            legacy_connection,
        );
        ws.write(
            "project/environments/dev/connections/crm.toml",
            "url = \"${vars.crm_url}\"\n",
        );
        // Each environment's CRM is its own: defined there, never promoted.
        ws.write(
            "project/environments/test/connections/crm.toml",
            format!("url = \"{}\"\n", test_crm.url()),
        );
        ws.write(
            "project/environments/prod/connections/crm.toml",
            "url = \"${vars.service}\"\nkind = \"dataverse\"\nauth = \"client_credentials\"\ntoken_url = \"${vars.token_url}\"\nclient_id = \"app-1\"\nclient_secret = \"${secret.crm_secret}\"\n",
        );
        ws.write(
            "project/environments/dev/pipelines/accounts.toml",
            r#"name = "accounts"
description = "Legacy customers become CRM accounts"

[sources.customers]
connection = "legacy"
table = "customers"

[[steps]]
name = "result"
sql = "SELECT code AS accountnumber, name FROM customers"

[target]
connection = "crm"
table = "accounts"
mode = "upsert"
key = "accountnumber"
"#,
        );
        ws.write(
            "project/environments/dev/jobs/nightly-accounts.toml",
            "pipeline = \"accounts\"\n\n[schedule]\ncron = \"0 2 * * *\"\n",
        );
        Project {
            ws,
            secrets,
            legacy,
            test_crm,
            emulator,
            printed: Default::default(),
        }
    }

    fn root(&self) -> PathBuf {
        self.ws.join("project")
    }

    /// `ferry --project <root> ARGS`: (exit code, output), the output kept for the canary check.
    fn ferry(&self, args: &[&str]) -> (i32, String) {
        let root = self.root().display().to_string();
        let mut all = vec!["--project", root.as_str()];
        all.extend_from_slice(args);
        let (code, text) = ferry_output(&all);
        self.printed.borrow_mut().push_str(&text);
        (code, text)
    }

    fn file(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// `ferry promote --from FROM --to TO ARGS`.
    fn promote(&self, from: &str, to: &str, args: &[&str]) -> (i32, String) {
        let mut all = vec!["promote", "--from", from, "--to", to];
        all.extend_from_slice(args);
        self.ferry(&all)
    }

    /// The id `ferry promote` printed ("promotion 3 ...").
    fn id(printed: &str) -> String {
        printed
            .split_whitespace()
            .skip_while(|w| *w != "promotion")
            .nth(1)
            .expect("a promotion id")
            .to_string()
    }

    /// prod's CRM: the emulator's accounts, (accountnumber, name), sorted.
    async fn prod_accounts(&self) -> Vec<Vec<String>> {
        let records = ferry_tests::odata_records(
            &self.emulator.url(),
            &self.emulator.token_url(),
            "accounts",
            "accountnumber,name",
        )
        .await;
        let mut out: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                ["accountnumber", "name"]
                    .map(|c| r[c].as_str().unwrap_or("NULL").to_string())
                    .to_vec()
            })
            .collect();
        out.sort();
        out
    }

    async fn history(&self) -> Vec<serde_json::Value> {
        let (code, text) = self.ferry(&["promote", "history", "--json"]);
        assert_eq!(code, 0, "{text}");
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Every file under the project whose bytes hold the canary.
    fn files_with_canary(&self) -> Vec<PathBuf> {
        ferry_tests::files_containing(&self.root(), CANARY)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_moves_from_dev_to_test_to_prod_without_its_secrets() {
    let p = Project::new("").await;
    let expected = rows(&[
        &["C-001", "Acme"],
        &["C-002", "Globex"],
        &["C-003", "Initech"],
    ]);

    // dev: the pipeline runs against dev's SQLite CRM, with dev's secret.
    let (code, out) = p.ferry(&["run", "--env", "dev", "accounts", "--quiet"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        sqlite_rows(
            &p.ws.join("dev-crm.db"),
            "SELECT accountnumber, name FROM accounts"
        ),
        expected
    );
    assert!(
        p.file(".ferry/dev/history").is_dir(),
        "dev keeps its own bookkeeping"
    );

    // The pipeline needs a connection test lacks: refused, with the command that promotes it.
    let (code, out) = p.promote("dev", "test", &["pipelines", "accounts"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("connection legacy (needed by pipeline accounts)"),
        "{out}"
    );
    assert!(
        out.contains("ferry promote --from dev --to test connections legacy"),
        "{out}"
    );
    assert!(!p.file("environments/test/pipelines/accounts.toml").exists());

    // Preview the connection, then discard it: nothing changes in test.
    let (code, out) = p.promote("dev", "test", &["connections", "legacy"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("create    connections/legacy"), "{out}");
    assert!(out.contains("Pending"), "{out}");
    let discarded = Project::id(&out);
    let summary = p.file(&format!(".ferry/promotions/{discarded}/changes.md"));
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("connections/legacy")
    );
    let (code, out) = p.ferry(&["promote", "discard", &discarded]);
    assert_eq!(code, 0, "{out}");
    assert!(!p.file("environments/test/connections/legacy.toml").exists());

    // With its dependencies: the connection first, then the pipeline.
    let (code, out) = p.promote(
        "dev",
        "test",
        &[
            "pipelines",
            "accounts",
            "--with-dependencies",
            "--title",
            "Accounts to test",
            "--comment",
            "first cut",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let first = Project::id(&out);
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} in {out}"));
    assert!(
        at("create    connections/legacy") < at("create    pipelines/accounts"),
        "{out}"
    );
    // A second promotion into test while this one is Pending is refused, naming it.
    let (code, out) = p.promote("dev", "test", &["jobs", "nightly-accounts"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("promotion {first} into \"test\" is Pending")),
        "{out}"
    );

    let (code, out) = p.ferry(&["promote", "complete", &first]);
    assert_eq!(code, 0, "{out}");
    for step in [
        "Success  Create connection legacy",
        "Success  Create pipeline accounts",
        "Success  Verify in \"test\"",
        "Success  Validate in \"test\": 1 valid",
        "connection legacy: set its secrets in \"test\"",
    ] {
        assert!(out.contains(step), "{step} in {out}");
    }
    let log = out
        .lines()
        .find_map(|l| l.strip_prefix("log: "))
        .expect("the log file")
        .to_string();
    let log_name = Path::new(&log)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        log_name.starts_with("ferry_promote_") && log_name.ends_with(".log"),
        "{log_name}"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains(&format!("Ferry {}", env!("CARGO_PKG_VERSION"))),
        "{log_text}"
    );
    assert!(
        log_text.contains("Create pipeline accounts: Success"),
        "{log_text}"
    );
    assert_eq!(
        std::fs::read_to_string(p.file("environments/test/pipelines/accounts.toml")).unwrap(),
        std::fs::read_to_string(p.file("environments/dev/pipelines/accounts.toml")).unwrap()
    );

    // test runs the same pipeline against its own PostgreSQL CRM, with its own secret.
    let (code, out) = p.ferry(&["run", "--env", "test", "accounts", "--quiet"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        p.test_crm
            .rows("SELECT accountnumber, name FROM accounts")
            .await,
        expected
    );

    // A job arrives disabled.
    let (code, out) = p.promote("dev", "test", &["jobs", "nightly-accounts", "--complete"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("arrives disabled"), "{out}");
    let job =
        std::fs::read_to_string(p.file("environments/test/jobs/nightly-accounts.toml")).unwrap();
    assert!(job.contains("enabled = false"), "{job}");
    let jobs_dir = p.file("environments/test/jobs").display().to_string();
    let (code, out) = p.ferry(&["jobs", &jobs_dir, "list", "--json"]);
    assert_eq!(code, 0, "{out}");
    let listed: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(listed["job"], "nightly-accounts", "{out}");
    assert_eq!(listed["enabled"], false, "{out}");

    // prod: the catalogue has a file where its pipelines folder should be, so the second step
    // fails; the first step's result is listed, the promotion is Failed.
    std::fs::write(p.file("environments/prod/pipelines"), "not a folder").unwrap();
    let (code, out) = p.promote(
        "test",
        "prod",
        &["pipelines", "accounts", "--with-dependencies", "--complete"],
    );
    assert_eq!(code, 1, "{out}");
    let failed = Project::id(&out);
    assert!(out.contains("Success  Create connection legacy"), "{out}");
    assert!(
        out.contains("Error    Create pipeline accounts: cannot create"),
        "{out}"
    );
    assert!(
        out.contains(&format!("promotion {failed}: Failed")),
        "{out}"
    );
    assert!(
        p.file("environments/prod/connections/legacy.toml")
            .is_file()
    );
    // Its revert removes what it created.
    let (code, out) = p.ferry(&["promote", "revert", &failed, "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !p.file("environments/prod/connections/legacy.toml").exists(),
        "{out}"
    );
    std::fs::remove_file(p.file("environments/prod/pipelines")).unwrap();
    let (code, out) = p.promote(
        "test",
        "prod",
        &["pipelines", "accounts", "--with-dependencies", "--complete"],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = p.ferry(&["run", "--env", "prod", "accounts", "--quiet"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(p.prod_accounts().await, expected);

    // Revert the first test promotion after someone edited its pipeline in test: the warning
    // names it; test then has neither the pipeline nor the connection, and keeps its own CRM.
    let edited = p.file("environments/test/pipelines/accounts.toml");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, text.replace("upsert", "insert")).unwrap();
    let (code, out) = p.ferry(&["promote", "revert", &first]);
    assert_eq!(code, 2, "no terminal, no --yes: {out}");
    assert!(
        out.contains("pipelines/accounts was changed in \"test\" after the promotion"),
        "{out}"
    );
    assert!(
        out.contains(
            "jobs/nightly-accounts in \"test\" needs pipelines/accounts, which the revert removes"
        ),
        "{out}"
    );
    assert!(edited.is_file(), "nothing reverted without confirmation");
    let (code, out) = p.ferry(&["promote", "revert", &first, "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(!edited.exists() && !p.file("environments/test/connections/legacy.toml").exists());
    assert!(p.file("environments/test/connections/crm.toml").is_file());

    // Comments: yours can be deleted, someone else's not.
    let (code, out) = p.ferry(&[
        "promote",
        "comment",
        &first,
        "reverted: the key changes",
        "--as",
        "bo",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = p.ferry(&["promote", "comment", &first, "--delete", "2"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("comment 2 is bo's"), "{out}");
    let (code, out) = p.ferry(&["promote", "comment", &first, "--delete", "2", "--as", "bo"]);
    assert_eq!(code, 0, "{out}");

    let history = p.history().await;
    let status = |id: &str| {
        history
            .iter()
            .find(|h| h["id"] == id.parse::<i64>().unwrap())
            .unwrap_or_else(|| panic!("{id} in {history:?}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(&discarded), "Discarded");
    assert_eq!(status(&first), "Reverted");
    assert_eq!(status(&failed), "Reverted");
    let first_record = history
        .iter()
        .find(|h| h["id"] == first.parse::<i64>().unwrap())
        .unwrap();
    assert_eq!(first_record["title"], "Accounts to test");
    let comments: Vec<&str> = first_record["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        comments,
        ["first cut"],
        "the deleted comment is gone, the first stays"
    );
    let (code, shown) = p.ferry(&["promote", "show", &first]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("reverted by"), "{shown}");

    // The dashboard shows the promotions, and no secret either.
    let root = p.root().display().to_string();
    let state = p.file(".ferry/test").display().to_string();
    let mut server = ferry_tests::ferry_command()
        .args([
            "--project",
            &root,
            "serve",
            "--state-dir",
            &state,
            "--port",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let listed = reqwest::get(format!("{url}/promotions"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let one = reqwest::get(format!("{url}/promotions/{first}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        listed.contains("Accounts to test") && listed.contains("Reverted"),
        "{listed}"
    );
    assert!(
        one.contains("reverted by") && one.contains("connections/legacy"),
        "{one}"
    );
    p.printed.borrow_mut().push_str(&listed);
    p.printed.borrow_mut().push_str(&one);

    // The canary: in no file of the project (catalogues, logs, summaries, Delta tables), in no
    // output.
    assert_eq!(p.files_with_canary(), Vec::<PathBuf>::new());
    assert!(!p.printed.borrow().contains(CANARY));
    drop(p.secrets);
    drop(p.legacy);
}

/// The seed's rule: a runner of the source and a promoter of the target, checked before
/// anything happens; a secret written as a value in a catalogue is refused, never shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_literal_secrets_are_refused_before_anything_changes() {
    let p = Project::new(
        "\n[environments.audit]\npromoters = [\"release-manager\", \"group:ferry-release\"]\nrunners = [\"release-manager\"]\n",
    )
    .await;
    let (code, out) = p.promote(
        "dev",
        "audit",
        &["connections", "crm", "--as", "release-manager"],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("may not promote into \"audit\""), "{out}");
    assert!(!p.file("environments/audit").exists());
    p.ws.write(
        "project/environments/audit/connections/crm.toml",
        "url = \"sqlite://x.db\"\n",
    );
    p.ws.write(
        "project/environments/audit/pipelines/accounts.toml",
        "name = \"accounts\"\n[sources.a]\npath = \"a.csv\"\n[target]\nconnection = \"crm\"\ntable = \"t\"\n",
    );
    let (code, out) = p.ferry(&["run", "--env", "audit", "accounts"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("may not run pipelines in \"audit\""), "{out}");

    p.ws.write(
        "project/environments/dev/connections/pasted.toml",
        format!("url = \"postgres://loader:{CANARY}@db/crm\"\n"),
    );
    let (code, out) = p.promote("dev", "test", &["connections", "pasted"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("url (line 1) has a password in it"), "{out}");
    assert!(!out.contains(CANARY));
    assert!(!p.file("environments/test/connections/pasted.toml").exists());
    let history = p.history().await;
    assert!(history.is_empty(), "{history:?}");
}

/// `secrets_command`: a vault CLI's stand-in is asked for each secret by name, once per run, and its
/// answer is used, never stored; a command that fails names the environment and the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_a_command_read_once_per_run() {
    let calls = Workspace::new();
    let log = calls.join("calls.txt").display().to_string();
    let p = Project::new(&format!(
        "\n[environments.vault]\nsecrets_command = [\"sh\", \"-c\", \"echo \\\"$0\\\" >> {log}; printf 'from-vault-%s' \\\"$0\\\"\", \"{{name}}\"]\n[environments.vault.vars]\nlegacy_url = \"{}\"\n\n[environments.broken]\nsecrets_command = [\"sh\", \"-c\", \"echo 'vault: permission denied' >&2; exit 3\"]\n[environments.broken.vars]\nlegacy_url = \"{}\"\n",
        "${vars.x}", "${vars.x}"
    ))
    .await;
    // The vars above are placeholders; each environment reads the legacy database.
    let environments = std::fs::read_to_string(p.file("environments.toml"))
        .unwrap()
        .replace("${vars.x}", &p.legacy.url());
    std::fs::write(p.file("environments.toml"), environments).unwrap();
    let pipeline = "name = \"export\"\n[sources.customers]\nconnection = \"legacy\"\nquery = \"SELECT code FROM customers\"\n[target]\npath = \"out/codes.csv\"\nmode = \"truncate\"\n";
    for env in ["vault", "broken"] {
        p.ws.write(
            &format!("project/environments/{env}/connections/legacy.toml"),
            "url = \"${vars.legacy_url}\"\npassword = \"${secret.legacy_password}\"\n",
        );
        p.ws.write(
            &format!("project/environments/{env}/pipelines/export.toml"),
            pipeline,
        );
    }
    for _ in 0..2 {
        let (code, out) = p.ferry(&["run", "--env", "vault", "export", "--quiet"]);
        assert_eq!(code, 0, "{out}");
    }
    let codes = std::fs::read_to_string(p.file("out/codes.csv")).unwrap();
    assert_eq!(codes.lines().count(), 4, "{codes}");
    let asked = std::fs::read_to_string(calls.join("calls.txt")).unwrap();
    assert_eq!(asked, "legacy_password\nlegacy_password\n", "once a run");
    assert_eq!(
        ferry_tests::files_containing(&p.root(), "from-vault-legacy_password"),
        Vec::<PathBuf>::new()
    );

    let (code, out) = p.ferry(&["validate", "--env", "broken", "export"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("the secrets command of \"broken\"")
            && out.contains("failed for legacy_password"),
        "{out}"
    );
    assert!(out.contains("vault: permission denied"), "{out}");
}

/// A dropbox configuration in dev's catalogue lands a delivery in dev's SQLite CRM; promoted to
/// prod, the same configuration lands the next delivery in prod's Dataverse, through prod's
/// connection and secret, with its runs kept in prod's state dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropbox_configuration_is_promoted_and_runs_in_each_environment() {
    let p = Project::new("").await;
    p.ws.write(
        "project/environments/dev/dropbox/intake.toml",
        "name = \"intake\"\n\n[dropbox]\nconnection = \"crm\"\nstable_for = \"0s\"\n",
    );
    let deliver = |env: &str, rows: &str| {
        p.ws.write(
            &format!("project/dropbox/{env}/intake/inbox/accounts.csv"),
            format!("accountnumber,name\n{rows}"),
        );
        p.ws.write(
            &format!("project/dropbox/{env}/intake/inbox/delivery.json"),
            r#"{ "accounts.csv": { "key": ["accountnumber"] } }"#,
        );
    };
    deliver("dev", "D-1,Dev One\nD-2,Dev Two\n");
    let (code, out) = p.ferry(&["dropbox", "run", "--env", "dev", "intake"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        sqlite_rows(
            &p.ws.join("dev-crm.db"),
            "SELECT accountnumber, name FROM accounts"
        ),
        rows(&[&["D-1", "Dev One"], &["D-2", "Dev Two"]])
    );

    let (code, out) = p.promote("dev", "prod", &["dropbox", "intake", "--complete"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("dropbox intake: tell its users"), "{out}");
    deliver("prod", "P-1,Prod One\n");
    let (code, out) = p.ferry(&["dropbox", "run", "--env", "prod", "intake"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        p.prod_accounts().await,
        rows(&[&["P-1", "Prod One"]]),
        "only prod's delivery, in prod's service"
    );
    let (code, out) = p.ferry(&["history", "--env", "prod"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("intake-accounts"),
        "the entity's run is prod's: {out}"
    );

    // The dropbox as a job of prod's catalogue, run now by `ferry jobs`.
    p.ws.write(
        "project/environments/prod/jobs/intake.toml",
        "dropbox = \"intake\"\n\n[schedule]\ncron = \"0 * * * *\"\n",
    );
    deliver("prod", "P-2,Prod Two\n");
    let jobs = p.file("environments/prod/jobs").display().to_string();
    let (code, out) = p.ferry(&["jobs", &jobs, "run", "intake"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        p.prod_accounts().await,
        rows(&[&["P-1", "Prod One"], &["P-2", "Prod Two"]])
    );
    assert_eq!(p.files_with_canary(), Vec::<PathBuf>::new());
}

/// A completion killed between its steps (SIGKILL): the history keeps it In Progress with the step
/// that was done, and its revert undoes exactly that step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_killed_midway_is_reverted_step_by_step() {
    let p = Project::new("").await;
    let (code, out) = p.promote(
        "dev",
        "test",
        &["pipelines", "accounts", "--with-dependencies"],
    );
    assert_eq!(code, 0, "{out}");
    let id = Project::id(&out);
    let root = p.root().display().to_string();
    ferry_tests::kill_at(
        &["--project", &root, "promote", "complete", &id],
        "promotion_step:2",
    );
    assert!(
        p.file("environments/test/connections/legacy.toml")
            .is_file()
    );
    assert!(!p.file("environments/test/pipelines/accounts.toml").exists());
    let (code, shown) = p.ferry(&["promote", "show", &id]);
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("In Progress"), "{shown}");
    assert!(
        shown.contains("Success  Create connection legacy"),
        "{shown}"
    );
    assert!(
        shown.contains("Running  Create pipeline accounts"),
        "{shown}"
    );
    let (code, out) = p.ferry(&["promote", "revert", &id, "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("remove connections/legacy"), "{out}");
    assert!(
        !out.contains("pipelines/accounts"),
        "never written, not reverted: {out}"
    );
    assert!(!p.file("environments/test/connections/legacy.toml").exists());
    assert!(p.file("environments/test/connections/crm.toml").is_file());
}
