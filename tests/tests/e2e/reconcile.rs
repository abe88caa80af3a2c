//! `ferry reconcile` and `[run] reconcile`: the target compared with the pipeline's result on
//! PostgreSQL, MySQL, SQLite and OData, after someone changed a value, deleted a row and added one; and a
//! target whose trigger rewrites what was written, caught by the reconciliation after the run.

use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, ferry_output};

/// 50 accounts in a CSV and a sync pipeline into `connection` (its url), keyed by `key`.
fn accounts_by(ws: &Workspace, url: &str, key: &str) -> String {
    let mut csv = String::from("id,name,balance\n");
    for i in 1..=50 {
        csv.push_str(&format!("{i},Account {i},{i}.25\n"));
    }
    ws.write("in/accounts.csv", csv);
    ws.write(
        "accounts.toml",
        format!(
            "name = \"accounts\"\n[connections.db]\nurl = \"{url}\"\n[sources.accounts]\npath = \"in/accounts.csv\"\n\
             schema = {{ balance = \"decimal(12,2)\" }}\n[target]\nconnection = \"db\"\ntable = \"accounts\"\n\
             mode = \"sync\"\nkey = \"{key}\"\ncreate = true\n"
        ),
    )
    .display()
    .to_string()
}

/// 50 accounts keyed by id.
fn accounts(ws: &Workspace, url: &str) -> String {
    accounts_by(ws, url, "id")
}

/// Runs the pipeline, checks they agree, tampers with the target by `tamper`, and checks the
/// reconciliation names each key.
async fn changed_missing_and_extra_rows_are_named(url: &str, tamper: impl AsyncFnOnce()) {
    keys_that_differ_are_named(url, "id", ["9", "7", "999"], tamper).await;
}

/// The same, keyed by `key`: `named` are the missing, changed and extra rows' keys as printed.
async fn keys_that_differ_are_named(
    url: &str,
    key: &str,
    named: [&str; 3],
    tamper: impl AsyncFnOnce(),
) {
    let ws = Workspace::new();
    let file = accounts_by(&ws, url, key);
    let (code, out) = ferry_output(&["run", &file, "--quiet"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = ferry_output(&["reconcile", &file]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("source and target agree"), "{out}");
    assert!(
        out.contains("50 rows in the source, 50 in accounts"),
        "{out}"
    );
    tamper().await;
    let (code, out) = ferry_output(&["reconcile", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("source and target DIFFER"), "{out}");
    // Each side counted as it streams into the join: one row missing and one extra leave 50 each.
    assert!(
        out.contains("50 rows in the source, 50 in accounts"),
        "{out}"
    );
    let [missing, different, extra] = named;
    assert!(
        out.contains(&format!("1 missing from the target: {missing}")),
        "{out}"
    );
    assert!(out.contains(&format!("1 different: {different}")), "{out}");
    assert!(
        out.contains(&format!("1 only in the target: {extra}")),
        "{out}"
    );
    let (code, out) = ferry_output(&["reconcile", &file, "--count"]);
    assert_eq!(code, 0, "the same number of rows: {out}");
    // The next run puts it right, and they agree again.
    let (code, out) = ferry_output(&["run", &file, "--quiet"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = ferry_output(&["reconcile", &file]);
    assert_eq!(code, 0, "{out}");
}

const TAMPER: &str = "UPDATE accounts SET balance = 7.26 WHERE id = 7; DELETE FROM accounts WHERE id = 9; \
    INSERT INTO accounts (id, name, balance) VALUES (999, 'Stray', 0)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reconciliation_names_the_keys_that_differ() {
    let db = TestDb::new(Server::Postgres).await;
    changed_missing_and_extra_rows_are_named(&db.url(), async || db.exec(TAMPER).await).await;
}

/// A text key does not split in ranges: the target is read whole, and every key is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reconciliation_by_a_text_key_names_the_keys_that_differ() {
    let db = TestDb::new(Server::Postgres).await;
    let tamper = "UPDATE accounts SET balance = 7.26 WHERE name = 'Account 7'; \
        DELETE FROM accounts WHERE name = 'Account 9'; \
        INSERT INTO accounts (id, name, balance) VALUES (999, 'Stray', 0)";
    let named = ["Account 9", "Account 7", "Stray"];
    keys_that_differ_are_named(&db.url(), "name", named, async || db.exec(tamper).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_reconciliation_names_the_keys_that_differ() {
    let db = TestDb::new(Server::Mysql).await;
    changed_missing_and_extra_rows_are_named(&db.url(), async || db.exec(TAMPER).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reconciliation_names_the_keys_that_differ() {
    let dir = Workspace::new();
    let path = dir.join("crm.db");
    let url = format!("sqlite://{}", path.display());
    changed_missing_and_extra_rows_are_named(&url, async || {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(TAMPER)
            .unwrap()
    })
    .await;
}

/// `[run] reconcile = "checksum"`: a target whose trigger rewrites names is caught after the run;
/// the run's summary says so and the state table's `validated` is false.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reconciles_after_writing_and_marks_what_differs_not_validated() {
    let ws = Workspace::new();
    let db = ws.join("crm.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, balance DECIMAL(12,2));
             CREATE TRIGGER shout AFTER INSERT ON accounts WHEN NEW.id = 13
             BEGIN UPDATE accounts SET name = upper(NEW.name) WHERE id = NEW.id; END;",
        )
        .unwrap();
    let file = accounts(&ws, "sqlite://crm.db");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}[run]\nreconcile = \"checksum\"\n")).unwrap();
    let (code, out) = ferry_output(&["run", &file]);
    assert_eq!(code, 0, "the rows landed: {out}");
    assert!(
        out.contains("reconciled    source and target DIFFER"),
        "{out}"
    );
    assert!(out.contains("1 different: 13"), "{out}");
    let pipeline = ferry::spec::Pipeline::load(std::path::Path::new(&file)).unwrap();
    let (_, state) = ferry_tests::read_delta(
        &std::path::Path::new(&pipeline.state_dir).join("state"),
        "SELECT CAST(validated AS VARCHAR) FROM t",
    )
    .await;
    assert_eq!(state, vec![vec!["false".to_string()]], "{out}");

    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TRIGGER shout; UPDATE accounts SET name = 'Account 13' WHERE id = 13;")
        .unwrap();
    let (code, out) = ferry_output(&["run", &file, "--fresh"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("reconciled    source and target agree"),
        "{out}"
    );
}

/// On OData the target is read back with `$select` (the OData source): a changed name, a deleted
/// record and a stray one are named by their alternate key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odata_reconciliation_names_the_keys_that_differ() {
    let emu = ferry_tests::anonymous_emulator().await;
    let url = emu.url();
    let ws = Workspace::new();
    let mut csv = String::from("accountnumber,name\n");
    for i in 1..=50 {
        csv.push_str(&format!("A-{i},Account {i}\n"));
    }
    ws.write("in/accounts.csv", csv);
    let file = ws
        .write(
            "accounts.toml",
            format!(
                "name = \"accounts\"\n[connections.crm]\nurl = \"{url}\"\nkind = \"dataverse\"\n\
                 [sources.accounts]\npath = \"in/accounts.csv\"\n[target]\nconnection = \"crm\"\n\
                 table = \"accounts\"\nmode = \"sync\"\nkey = \"accountnumber\"\n"
            ),
        )
        .display()
        .to_string();
    let (code, out) = ferry_output(&["run", &file, "--quiet"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = ferry_output(&["reconcile", &file]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("50 rows in the source, 50 in accounts"),
        "{out}"
    );

    let http = reqwest::Client::new();
    let id = async |number: &str| -> String {
        let page: serde_json::Value = http
            .get(format!(
                "{url}/accounts?$select=accountid&$filter=accountnumber%20eq%20'{number}'"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["value"][0]["accountid"].as_str().unwrap().to_string()
    };
    let (seven, nine) = (id("A-7").await, id("A-9").await);
    for request in [
        http.patch(format!("{url}/accounts({seven})"))
            .json(&serde_json::json!({"name": "Changed"})),
        http.delete(format!("{url}/accounts({nine})")),
        http.post(format!("{url}/accounts"))
            .json(&serde_json::json!({"accountnumber": "A-999", "name": "Stray"})),
    ] {
        let status = request.send().await.unwrap().status();
        assert!(status.is_success(), "{status}");
    }
    let (code, out) = ferry_output(&["reconcile", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("50 rows in the source, 50 in accounts"),
        "{out}"
    );
    assert!(out.contains("1 missing from the target: A-9"), "{out}");
    assert!(out.contains("1 different: A-7"), "{out}");
    assert!(out.contains("1 only in the target: A-999"), "{out}");
    let (code, out) = ferry_output(&["run", &file, "--quiet"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = ferry_output(&["reconcile", &file]);
    assert_eq!(code, 0, "the sync put it right: {out}");
    emu.stop().await;
}
