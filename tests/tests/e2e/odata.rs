//! The OData target against the emulator on real HTTP: exactly once through faults and limits,
//! invalid records quarantined with the service's messages, insert, sync, atomic batches, token
//! renewal, a generic service without alternate keys, and no secret anywhere.

use std::time::Duration;

use ferry::run::Status;
use ferry_emulator::limits::Limits;
use ferry_emulator::model::Model;
use ferry_emulator::{self as emulator, Config, Faults, Latency, Running};
use ferry_tests::{Workspace, run};
use serde_json::Value;

const CANARY: &str = "canary-5ecret-7f3a";

async fn start(config: Config) -> Running {
    emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn quiet() -> Config {
    Config {
        limits: Limits::off(),
        latency: Latency::none(),
        ..Config::default()
    }
}

fn accounts_csv(n: usize, name: impl Fn(usize) -> String) -> String {
    let mut csv = String::from("accountnumber,name,numberofemployees\n");
    for i in 0..n {
        csv.push_str(&format!("A-{i:05},{},{}\n", name(i), i % 500));
    }
    csv
}

fn pipeline(emu: &Running, target: &str) -> String {
    format!(
        r#"name = "crm"
[connections.crm]
url = "{url}"
kind = "dataverse"
auth = "client_credentials"
token_url = "{token}"
client_id = "app-1"
client_secret = "{CANARY}"

[sources.src]
path = "in/accounts.csv"

[target]
connection = "crm"
table = "accounts"
{target}

[run]
max_retries = 8
"#,
        url = emu.url(),
        token = emu.token_url()
    )
}

/// The accounts `accounts_csv(n, name)` holds, as [`accounts`] reads them back: a whole entity set
/// to compare with, not a count and a few spot checks.
fn expected_accounts(
    n: usize,
    name: impl Fn(usize) -> String,
) -> std::collections::BTreeMap<String, (String, i64)> {
    (0..n)
        .map(|i| (format!("A-{i:05}"), (name(i), (i % 500) as i64)))
        .collect()
}

/// A workspace holding `n` accounts ("Account <i>") and a pipeline upserting them by account number.
fn upsert_accounts(
    emu: &Running,
    n: usize,
    batch_size: usize,
    workers: usize,
) -> (Workspace, ferry::spec::Pipeline) {
    let ws = Workspace::new();
    ws.write(
        "in/accounts.csv",
        accounts_csv(n, |i| format!("Account {i}")),
    );
    let target = format!(
        "mode = \"upsert\"\nkey = [\"accountnumber\"]\nbatch_size = {batch_size}\nworkers = {workers}"
    );
    let p = ws.pipeline("p.toml", &pipeline(emu, &target));
    (ws, p)
}

/// Every account in the emulator, by account number: (name, employees).
async fn accounts(emu: &Running) -> std::collections::BTreeMap<String, (String, i64)> {
    let c = reqwest::Client::new();
    let token = ferry_tests::odata_token(&emu.token_url()).await;
    let mut out = std::collections::BTreeMap::new();
    let mut next = Some(format!(
        "{}/accounts?$select=accountnumber,name,numberofemployees",
        emu.url()
    ));
    while let Some(url) = next {
        // The emulator may throttle or fault this reader too: ask again until it answers.
        let mut page = Value::Null;
        for _ in 0..50 {
            if let Ok(r) = c.get(&url).bearer_auth(&token).send().await
                && r.status().is_success()
                && let Ok(v) = r.json::<Value>().await
            {
                page = v;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for r in page["value"].as_array().expect("the emulator answered") {
            out.insert(
                r["accountnumber"].as_str().unwrap_or_default().to_string(),
                (
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["numberofemployees"].as_i64().unwrap_or(-1),
                ),
            );
        }
        next = page["@odata.nextLink"].as_str().map(String::from);
    }
    out
}

async fn stats(emu: &Running) -> Value {
    ferry_tests::emulator_stats(emu).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_land_exactly_once_through_faults_and_limits() {
    let emu = start(Config {
        limits: Limits {
            window: Duration::from_secs(1),
            retry_after_fractions: true,
            requests: 8,
            concurrency: 6,
            ..Limits::default()
        },
        latency: Latency {
            base: Duration::from_millis(5),
            per_record: Duration::from_micros(200),
            jitter: 0.3,
            ..Latency::none()
        },
        faults: Faults {
            errors: 0.1,
            slow: 0.03,
            slow_by: Duration::from_millis(300),
            dropped: 0.03,
            lost: 0.03,
            writes_only: false,
            storm: 0,
        },
        ..Config::default()
    })
    .await;
    let n = 3000;
    let (_ws, p) = upsert_accounts(&emu, n, 100, 4);
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_rejected),
        (Status::Completed, 0),
        "{report}"
    );
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(n, |i| format!("Account {i}")),
        "every record exactly once"
    );
    let s = stats(&emu).await;
    assert!(s["total"]["faults"].as_u64().unwrap() > 0, "{s}");
    assert!(
        s["total"]["throttled"].as_u64().unwrap() > 0,
        "the limits were met: {s}"
    );
    assert!(report.retries > 0, "{report}");
    emu.stop().await;
}

/// The issue's scale: 100,000 records, every kind of fault and the limits at once; each record lands
/// exactly once with its own content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_records_land_exactly_once_through_faults_and_limits() {
    let emu = start(Config {
        limits: Limits {
            window: Duration::from_secs(1),
            retry_after_fractions: true,
            // Below the pace the run reaches even on a busy machine, so the limit is always met.
            requests: 8,
            concurrency: 6,
            ..Limits::default()
        },
        latency: Latency {
            base: Duration::from_millis(5),
            per_record: Duration::from_micros(40),
            jitter: 0.3,
            ..Latency::none()
        },
        faults: Faults {
            errors: 0.1,
            slow: 0.03,
            slow_by: Duration::from_millis(300),
            dropped: 0.03,
            lost: 0.03,
            writes_only: true,
            storm: 0,
        },
        ..Config::default()
    })
    .await;
    let n = 100_000;
    let (_ws, p) = upsert_accounts(&emu, n, 1000, 4);
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::Completed, n as u64, 0),
        "{report}"
    );
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(n, |i| format!("Account {i}")),
        "every record exactly once"
    );
    let s = stats(&emu).await;
    assert!(s["total"]["faults"].as_u64().unwrap() > 0, "{s}");
    assert!(
        s["total"]["throttled"].as_u64().unwrap() > 0,
        "the limits were met: {s}"
    );
    assert_eq!(s["records"]["accounts"], n, "{s}");
    emu.stop().await;
}

/// A user meets the request limit once, learns its pace from it and rides under it: the 429s all
/// come while it finds the ceiling, none in the second half of the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_throttled_only_while_it_finds_the_ceiling() {
    let emu = start(Config {
        limits: Limits {
            window: Duration::from_secs(1),
            retry_after_fractions: true,
            requests: 20,
            execution: Duration::from_secs(1000),
            concurrency: 52,
            dop_hint: 8,
            enabled: true,
        },
        latency: Latency {
            base: Duration::from_millis(5),
            per_record: Duration::from_micros(100),
            jitter: 0.1,
            ..Latency::none()
        },
        ..quiet()
    })
    .await;
    // 140 requests at 20 a second: about seven windows.
    let n = 1400;
    let (_ws, p) = upsert_accounts(&emu, n, 10, 16);
    let report = run(&p).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(n, |i| format!("Account {i}"))
    );
    let s = stats(&emu).await;
    let throttled = s["total"]["throttled"].as_u64().unwrap();
    assert!(throttled > 0, "the limit was met: {s}");
    let last = Duration::from_millis(s["total"]["last_throttled_ms"].as_u64().unwrap());
    assert!(
        last < report.duration / 2,
        "a 429 at {last:?} of a {:?} run: {s}",
        report.duration
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_records_are_quarantined_with_the_services_messages() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    let long = "x".repeat(161);
    ws.write(
        "in/accounts.csv",
        format!(
            "accountnumber,name,numberofemployees\nA-1,good,1\nA-2,,2\nA-3,ok,3\nA-4,{long},4\n"
        ),
    );
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            "mode = \"upsert\"\nkey = [\"accountnumber\"]\nbatch_size = 10",
        ),
    );
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 2, 2),
        "{report}"
    );
    let book = ferry::book::Book::open(&p.state_dir, &p.name)
        .await
        .unwrap();
    let rejected = book.rejected("accounts").await.unwrap();
    let mut errors = rejected.errors.clone();
    errors.sort();
    assert_eq!(errors.len(), 2);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("required attribute 'name'") && e.contains("0x80040200")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(
            |e| e.contains("exceeded the maximum allowed length of '160'")
                && e.contains("0x80044331")
        ),
        "{errors:?}"
    );
    let good = |pairs: &[(&str, &str, i64)]| {
        pairs
            .iter()
            .map(|(k, name, n)| (k.to_string(), (name.to_string(), *n)))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        accounts(&emu).await,
        good(&[("A-1", "good", 1), ("A-3", "ok", 3)])
    );

    // Retried as they are, they fail again with the same messages and stay in quarantine.
    let again = ferry::run::retry::retry(&p, "accounts", None)
        .await
        .unwrap();
    assert_eq!(
        (again.landed.len(), again.failed.len()),
        (0, 2),
        "{again:?}"
    );
    // Corrected in the exported workbook, as a person would: a name, and a shorter one.
    let exported = ws.join("rejected.xlsx");
    ferry::book::quarantine::export_xlsx(&book.rejected("accounts").await.unwrap(), &exported)
        .unwrap();
    let (names, mut rows) = ferry_tests::read_workbook(&exported);
    let column = |n: &str| names.iter().position(|c| c == n).unwrap();
    for row in &mut rows {
        row[column("name")] = format!("fixed {}", row[column("accountnumber")]);
    }
    let numeric = [column("numberofemployees")];
    ferry_tests::write_workbook(&ws.join("corrected.xlsx"), &names, &rows, &numeric);
    let retried = ferry::run::retry::retry(&p, "accounts", Some(&ws.join("corrected.xlsx")))
        .await
        .unwrap();
    assert_eq!(
        (retried.landed.len(), retried.failed.len()),
        (2, 0),
        "{retried:?}"
    );
    assert_eq!(
        accounts(&emu).await,
        good(&[
            ("A-1", "good", 1),
            ("A-2", "fixed A-2", 2),
            ("A-3", "ok", 3),
            ("A-4", "fixed A-4", 4)
        ])
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_skips_existing_and_sync_deletes_what_left_the_source() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    ws.write("in/accounts.csv", accounts_csv(30, |i| format!("v1 {i}")));
    let insert = ws.pipeline(
        "i.toml",
        &pipeline(
            &emu,
            "mode = \"insert\"\nkey = [\"accountnumber\"]\nbatch_size = 7",
        ),
    );
    assert_eq!(run(&insert).await.rows_written, 30);
    ws.write("in/accounts.csv", accounts_csv(20, |i| format!("v2 {i}")));
    let again = run(&insert).await;
    assert_eq!(
        (again.status, again.rows_written, again.rows_skipped),
        (Status::Completed, 0, 20),
        "{again}"
    );
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(30, |i| format!("v1 {i}")),
        "insert never overwrites"
    );

    let sync = ws.pipeline(
        "s.toml",
        &pipeline(
            &emu,
            "mode = \"sync\"\nkey = [\"accountnumber\"]\nbatch_size = 7",
        )
        .replace("name = \"crm\"", "name = \"crm-sync\""),
    );
    let synced = run(&sync).await;
    assert_eq!(
        (synced.status, synced.rows_written, synced.rows_deleted),
        (Status::Completed, 20, 10),
        "{synced}"
    );
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(20, |i| format!("v2 {i}"))
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atomic_batch_with_a_bad_record_goes_to_quarantine_whole() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    ws.write(
        "in/accounts.csv",
        "accountnumber,name,numberofemployees\nA-1,a,1\nA-2,,2\nA-3,c,3\nA-4,d,4\n",
    );
    let p = ws.pipeline("p.toml", &pipeline(&emu, "mode = \"upsert\"\nkey = [\"accountnumber\"]\nbatch_size = 2\nworkers = 1\natomic = true"));
    let report = run(&p).await;
    assert_eq!(
        (report.rows_written, report.rows_rejected),
        (2, 2),
        "{report}"
    );
    let landed = accounts(&emu).await;
    assert_eq!(
        landed.keys().cloned().collect::<Vec<_>>(),
        vec!["A-3", "A-4"]
    );
    let book = ferry::book::Book::open(&p.state_dir, &p.name)
        .await
        .unwrap();
    let rejected = book.rejected("accounts").await.unwrap();
    assert!(
        rejected
            .errors
            .iter()
            .all(|e| e.contains("required attribute 'name'")),
        "{:?}",
        rejected.errors
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_renewed_and_the_secret_appears_nowhere() {
    let emu = start(Config {
        token_lifetime: Duration::from_secs(1),
        limits: Limits::off(),
        latency: Latency {
            base: Duration::from_millis(40),
            per_record: Duration::ZERO,
            jitter: 0.0,
            ..Latency::none()
        },
        ..Config::default()
    })
    .await;
    let ws = Workspace::new();
    ws.write("in/accounts.csv", accounts_csv(200, |i| format!("T {i}")));
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            "mode = \"upsert\"\nkey = [\"accountnumber\"]\nbatch_size = 5\nworkers = 1",
        ),
    );
    assert!(
        !format!("{p:?}").contains(CANARY),
        "the pipeline's Debug shows the secret"
    );
    let report = run(&p).await;
    assert_eq!(report.status, Status::Completed, "{report}");
    let issued = stats(&emu).await["clients"]["app-1"]["tokens_issued"]
        .as_u64()
        .unwrap();
    assert!(
        issued >= 2,
        "the run outlived its first token and got another ({issued} issued)"
    );
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(200, |i| format!("T {i}"))
    );
    assert!(!report.to_string().contains(CANARY));
    for entry in walk(&ws.join(".ferry")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(CANARY),
            "{} holds the secret",
            entry.display()
        );
    }
    emu.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_service_without_alternate_keys_is_upserted_by_primary_key() {
    let model = Model::from_toml(
        "[sets.products]\nentity = \"product\"\nkey = \"productid\"\n[sets.products.attributes]\nname = { type = \"string\", max_length = 50 }\nprice = { type = \"decimal\" }\n",
    )
    .unwrap();
    let emu = start(Config {
        model,
        auth: false,
        ..quiet()
    })
    .await;
    let ws = Workspace::new();
    let ids: Vec<String> = (0..5).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut csv = String::from("productid,name,price\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{id},p{i},{}.25\n", i + 1));
    }
    ws.write("in/p.csv", &csv);
    let toml = format!(
        r#"name = "generic"
[connections.svc]
url = "{}"
kind = "odata"
[sources.src]
path = "in/p.csv"
[[steps]]
name = "s"
sql = "SELECT productid, name, CAST(price AS DECIMAL(10,2)) AS price FROM src"
[target]
connection = "svc"
table = "products"
mode = "upsert"
key = ["productid"]
"#,
        emu.url()
    );
    let p = ws.pipeline("p.toml", &toml);
    assert_eq!(run(&p).await.status, Status::Completed);
    assert_eq!(run(&p).await.status, Status::Completed);
    let page: Value = reqwest::get(format!("{}/products({})", emu.url(), ids[2]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (page["name"].as_str(), page["price"].as_f64()),
        (Some("p2"), Some(3.25))
    );
    assert_eq!(stats(&emu).await["records"]["products"], 5);
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_resets_the_target_only_when_confirmed() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    ws.write("in/accounts.csv", accounts_csv(10, |i| format!("old {i}")));
    let upsert = ws.pipeline(
        "u.toml",
        &pipeline(&emu, "mode = \"upsert\"\nkey = [\"accountnumber\"]"),
    );
    assert_eq!(run(&upsert).await.status, Status::Completed);
    ws.write("in/accounts.csv", accounts_csv(4, |i| format!("new {i}")));
    let truncate = ws.pipeline(
        "t.toml",
        &pipeline(&emu, "mode = \"truncate\"\nkey = [\"accountnumber\"]")
            .replace("name = \"crm\"", "name = \"crm-t\""),
    );
    let refused = ferry::run::run(&truncate, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("deletes every record") && refused.contains("--yes"),
        "{refused}"
    );
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(10, |i| format!("old {i}")),
        "nothing was touched"
    );
    let settings = ferry::run::RunSettings {
        confirmed: true,
        ..Default::default()
    };
    let report = ferry::run::run(&truncate, &settings).await.unwrap();
    assert_eq!(report.status, Status::Completed, "{report}");
    assert_eq!(
        accounts(&emu).await,
        expected_accounts(4, |i| format!("new {i}"))
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_never_gets_through_waits_in_quarantine_as_retryable() {
    let faults = Faults {
        errors: 1.0,
        writes_only: true,
        ..Faults::default()
    };
    let emu = start(Config { faults, ..quiet() }).await;
    let ws = Workspace::new();
    ws.write("in/accounts.csv", accounts_csv(3, |i| format!("n {i}")));
    let p = ws.pipeline(
        "p.toml",
        &pipeline(&emu, "mode = \"upsert\"\nkey = [\"accountnumber\"]")
            .replace("max_retries = 8", "max_retries = 1"),
    );
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_rejected),
        (Status::PartialSuccess, 3),
        "{report}"
    );
    let book = ferry::book::Book::open(&p.state_dir, &p.name)
        .await
        .unwrap();
    let rejected = book.rejected("accounts").await.unwrap();
    assert!(
        rejected
            .causes
            .iter()
            .all(|c| c == "the target was unavailable; retrying can land it"),
        "{:?}",
        rejected.causes
    );
    assert!(
        rejected.errors[0].contains("still failing after 1 retries"),
        "{:?}",
        rejected.errors
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reads_metadata_and_reports_every_problem_before_writing() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    ws.write(
        "in/accounts.csv",
        "accountnumber,name,colour,numberofemployees\nA-1,a,red,many\n",
    );
    let p = ws.pipeline(
        "p.toml",
        &pipeline(&emu, "mode = \"upsert\"\nkey = [\"name\"]"),
    );
    let err = ferry::run::run(&p, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("entity account has no attribute \"colour\""),
        "{err}"
    );
    assert!(err.contains("column \"numberofemployees\" is Utf8 but attribute numberofemployees of account is Edm.Int32"), "{err}");
    assert!(
        err.contains("(name) is neither the primary key nor an alternate key of account"),
        "{err}"
    );
    assert!(
        err.contains("or an alternate key: [accountnumber]"),
        "{err}"
    );
    assert_eq!(stats(&emu).await["records"]["accounts"], 0);
    let wrong_set = ws.pipeline(
        "q.toml",
        &pipeline(&emu, "mode = \"upsert\"\nkey = [\"accountnumber\"]")
            .replace("table = \"accounts\"", "table = \"account\""),
    );
    let err = ferry::run::run(&wrong_set, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no entity set \"account\""), "{err}");
    emu.stop().await;
}

/// Finance & Operations: `legal_entity` is written as `dataAreaId` and is part of the key, so the
/// same customer account in two legal entities is two records, and a sync in one legal entity never
/// touches the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fno_legal_entities_are_written_and_synced_apart() {
    let model = Model::from_toml(
        "[sets.CustomersV3]\nentity = \"CustomerV3\"\nkey = \"CustomerId\"\nalternate_keys = [[\"dataAreaId\", \"CustomerAccount\"]]\n\
         [sets.CustomersV3.attributes]\ndataAreaId = { type = \"string\", max_length = 4, required = true }\n\
         CustomerAccount = { type = \"string\", max_length = 20 }\nName = { type = \"string\", max_length = 100 }\n",
    )
    .unwrap();
    let emu = start(Config {
        model,
        auth: false,
        ..quiet()
    })
    .await;
    let ws = Workspace::new();
    let pipeline = |name: &str, legal_entity: &str| {
        let toml = format!(
            r#"name = "{name}"
[connections.fo]
url = "{}"
kind = "fno"
[sources.src]
path = "in/{legal_entity}.csv"
[target]
connection = "fo"
table = "CustomersV3"
mode = "sync"
key = ["CustomerAccount"]
legal_entity = "{legal_entity}"
"#,
            emu.url()
        );
        ws.pipeline(&format!("{name}.toml"), &toml)
    };
    let customers = |names: &[&str]| {
        let mut csv = String::from("CustomerAccount,Name\n");
        for (i, n) in names.iter().enumerate() {
            csv.push_str(&format!("C-{i},{n}\n"));
        }
        csv
    };
    let in_entity = |le: &'static str| {
        let url = format!(
            "{}/CustomersV3?$filter=dataAreaId eq '{le}'&$select=CustomerAccount,Name",
            emu.url()
        );
        async move {
            let page: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            let mut rows: Vec<(String, String)> = page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["CustomerAccount"].as_str().unwrap().to_string(),
                        r["Name"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            rows.sort();
            rows
        }
    };
    ws.write("in/usmf.csv", customers(&["a", "b", "c", "d", "e"]));
    ws.write("in/demf.csv", customers(&["x", "y", "z"]));
    let usmf = pipeline("usmf", "usmf");
    let demf = pipeline("demf", "demf");
    assert_eq!(run(&usmf).await.status, Status::Completed);
    assert_eq!(run(&demf).await.status, Status::Completed);
    assert_eq!(stats(&emu).await["records"]["CustomersV3"], 8);
    assert_eq!(in_entity("demf").await[0], ("C-0".into(), "x".into()));
    assert_eq!(in_entity("usmf").await[0], ("C-0".into(), "a".into()));

    // usmf loses C-4 and renames C-0: its sync deletes and updates there, and demf keeps all three.
    ws.write("in/usmf.csv", customers(&["A", "b", "c", "d"]));
    let report = run(&usmf).await;
    assert_eq!(
        (report.status, report.rows_deleted),
        (Status::Completed, 1),
        "{report}"
    );
    let us = in_entity("usmf").await;
    assert_eq!(us.len(), 4);
    assert_eq!(us[0], ("C-0".into(), "A".into()));
    assert_eq!(in_entity("demf").await.len(), 3);
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fno_legal_entity_and_a_data_area_column_together_are_refused_before_writing() {
    let emu = start(Config {
        auth: false,
        ..quiet()
    })
    .await;
    let ws = Workspace::new();
    ws.write("in/a.csv", "accountnumber,name,dataAreaId\nA-1,x,usmf\n");
    let toml = format!(
        r#"name = "fo"
[connections.fo]
url = "{}"
kind = "fno"
[sources.src]
path = "in/a.csv"
[target]
connection = "fo"
table = "accounts"
mode = "upsert"
key = ["accountnumber"]
legal_entity = "usmf"
"#,
        emu.url()
    );
    let p = ws.pipeline("fo.toml", &toml);
    let refused = ferry::run::run(&p, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("\"dataAreaId\"") && refused.contains("legal_entity = \"usmf\""),
        "{refused}"
    );
    assert_eq!(stats(&emu).await["records"]["accounts"], 0);
    emu.stop().await;
}

/// A token endpoint that redirects elsewhere: the client secret is never sent on to the other host
/// (a 307 would re-send the form), and the run says where it was sent instead of following.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_to_another_host() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_port = elsewhere.local_addr().unwrap().port();
    let reached = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let reached = reached.clone();
        async move {
            while let Ok((mut s, _)) = elsewhere.accept().await {
                reached.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        }
    });
    let redirecting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = redirecting.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = redirecting.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{elsewhere_port}/token\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let ws = Workspace::new();
    ws.write("in/accounts.csv", accounts_csv(2, |i| format!("n {i}")));
    let p = ws.pipeline(
        "p.toml",
        &format!(
            r#"name = "redirected"
[connections.crm]
url = "http://127.0.0.1:{port}/api/data/v9.2"
kind = "dataverse"
auth = "client_credentials"
token_url = "http://127.0.0.1:{port}/token"
client_id = "app"
client_secret = "s3cret-canary"
[sources.src]
path = "in/accounts.csv"
[target]
connection = "crm"
table = "accounts"
mode = "upsert"
key = "accountnumber"
[run]
max_retries = 0
"#
        ),
    );
    let outcome = ferry::run::run(&p, &ferry::run::RunSettings::default()).await;
    let said = match &outcome {
        Ok(report) => format!("{report}"),
        Err(e) => e.to_string(),
    };
    assert!(
        said.contains(&format!(
            "redirected to http://127.0.0.1:{elsewhere_port}/token"
        )),
        "{said}"
    );
    assert!(!said.contains("s3cret-canary"), "{said}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the secret went on to another host"
    );
}

/// JSON has no NaN or infinity: a row holding one is refused by Ferry, naming the column, and goes
/// to quarantine; it is never sent with the value silently turned into null (which would wipe the
/// attribute of an existing record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_and_infinity_are_refused_naming_the_column_never_sent_as_null() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    ws.write(
        "in/accounts.csv",
        "accountnumber,name\nA-1,a\nA-2,b\nA-3,c\n",
    );
    let text = pipeline(&emu, "mode = \"upsert\"\nkey = [\"accountnumber\"]").replace(
        "[target]",
        r#"[[steps]]
name = "priced"
sql = "SELECT accountnumber, name, CASE accountnumber WHEN 'A-2' THEN CAST('NaN' AS DOUBLE) WHEN 'A-3' THEN CAST('inf' AS DOUBLE) ELSE 1.5 END AS revenue FROM src"

[target]"#,
    );
    let p = ws.pipeline("p.toml", &text);
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 1, 2),
        "{report}"
    );
    let landed = ferry_tests::odata_records(
        &emu.url(),
        &emu.token_url(),
        "accounts",
        "accountnumber,name,revenue",
    )
    .await;
    let landed: Vec<(&str, &str, Option<f64>)> = landed
        .iter()
        .map(|r| {
            (
                r["accountnumber"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default(),
                r["revenue"].as_f64(),
            )
        })
        .collect();
    assert_eq!(landed, vec![("A-1", "a", Some(1.5))]);
    let book = ferry::book::Book::open(&p.state_dir, &p.name)
        .await
        .unwrap();
    let rejected = book.rejected("accounts").await.unwrap();
    // The two rows themselves wait in quarantine, each with its own reason.
    let numbers = rejected.rows.column_by_name("accountnumber").unwrap();
    let mut quarantined: Vec<(String, String)> = (0..rejected.rows.num_rows())
        .map(|i| arrow::util::display::array_value_to_string(numbers, i).unwrap())
        .zip(rejected.errors.iter().cloned())
        .collect();
    quarantined.sort();
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    assert_eq!(quarantined[0].0, "A-2");
    assert!(
        quarantined[0].1.contains("column \"revenue\" holds NaN"),
        "{quarantined:?}"
    );
    assert_eq!(quarantined[1].0, "A-3");
    assert!(
        quarantined[1].1.contains("column \"revenue\" holds inf"),
        "{quarantined:?}"
    );
    emu.stop().await;
}
