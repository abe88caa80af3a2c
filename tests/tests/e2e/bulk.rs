//! Dataverse's bulk messages against the emulator on real HTTP: UpsertMultiple and CreateMultiple
//! carry whole batches, a standard table's refused group falls back to `$batch` so that only the bad
//! record is quarantined, an elastic table's partial success is read per record, a set without the
//! messages falls back for the run, faults and limits leave every record exactly once, and the
//! bypass headers go only when set, with `validate` naming a user without the privilege.

use std::collections::BTreeMap;

use ferry::run::Status;
use ferry_emulator::limits::Limits;
use ferry_emulator::model::Model;
use ferry_emulator::{Config, Faults, Latency, Running};
use ferry_tests::{Workspace, emulator_stats as stats, ferry_output, odata_records, run};

async fn start(config: Config) -> Running {
    ferry_emulator::start(config, "127.0.0.1:0".parse().unwrap())
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

/// A pipeline from `in/accounts.csv` into the emulator's accounts, signed in as `users`.
fn pipeline(emu: &Running, users: &[&str], target: &str) -> String {
    let mut extra = String::new();
    for user in &users[1..] {
        extra.push_str(&format!(
            "[[connections.crm.users]]\nclient_id = \"{user}\"\nclient_secret = \"s\"\n"
        ));
    }
    format!(
        "name = \"bulk\"\n[connections.crm]\nurl = \"{url}\"\nkind = \"dataverse\"\n\
         auth = \"client_credentials\"\ntoken_url = \"{token}\"\nclient_id = \"{first}\"\nclient_secret = \"s\"\n\
         {extra}\n[sources.src]\npath = \"in/accounts.csv\"\n\n[target]\nconnection = \"crm\"\ntable = \"accounts\"\n{target}\n\n[run]\nmax_retries = 8\n",
        url = emu.url(),
        token = emu.token_url(),
        first = users[0],
    )
}

/// Runs the pipeline again from the start (its last run completed; this is a new one).
async fn run_fresh(p: &ferry::spec::Pipeline) -> ferry::run::RunReport {
    let fresh = ferry::run::RunSettings {
        fresh: true,
        ..Default::default()
    };
    ferry::run::run(p, &fresh).await.unwrap()
}

fn csv(rows: impl Iterator<Item = (String, String, usize)>) -> String {
    let mut out = String::from("accountnumber,name,numberofemployees\n");
    for (k, name, n) in rows {
        out.push_str(&format!("{k},{name},{n}\n"));
    }
    out
}

/// Every account by number: (name, employees).
async fn accounts(emu: &Running) -> BTreeMap<String, (String, i64)> {
    odata_records(
        &emu.url(),
        &emu.token_url(),
        "accounts",
        "accountnumber,name,numberofemployees",
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r["accountnumber"].as_str().unwrap_or_default().to_string(),
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["numberofemployees"].as_i64().unwrap_or(-1),
            ),
        )
    })
    .collect()
}

fn expected(rows: &[(String, String, usize)]) -> BTreeMap<String, (String, i64)> {
    rows.iter()
        .map(|(k, n, e)| (k.clone(), (n.clone(), *e as i64)))
        .collect()
}

fn generated(range: std::ops::Range<usize>, name: &str) -> Vec<(String, String, usize)> {
    range
        .map(|i| (format!("A-{i:05}"), format!("{name} {i}"), i % 97))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_multiple_carries_whole_batches_and_updates_in_place() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    let first = generated(0..2500, "Account");
    ws.write("in/accounts.csv", csv(first.iter().cloned()));
    // No batch_size: a Dataverse target writing by bulk messages gets 500 records to a request
    // (one worker, so that its partition holds every record).
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            &["app-1"],
            "mode = \"upsert\"\nkey = \"accountnumber\"\nworkers = 1",
        ),
    );
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 2500),
        "{report}"
    );
    assert_eq!(accounts(&emu).await, expected(&first));
    let s = stats(&emu).await;
    assert_eq!(s["total"]["bulk_requests"], 5, "{s}");
    assert_eq!(s["total"]["bulk_targets"], 2500, "{s}");

    // Half changed, 500 new: updated where they are, no record twice.
    let mut second = generated(0..1250, "Renamed");
    second.extend(generated(1250..3000, "Account"));
    ws.write("in/accounts.csv", csv(second.iter().cloned()));
    let report = run_fresh(&p).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 3000),
        "{report}"
    );
    assert_eq!(accounts(&emu).await, expected(&second));
    let s = stats(&emu).await;
    assert_eq!(s["records"]["accounts"], 3000, "{s}");
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_group_falls_back_to_batch_and_only_the_bad_record_is_quarantined() {
    let emu = start(quiet()).await;
    let ws = Workspace::new();
    let mut rows = generated(0..300, "Account");
    rows[137].1 = "x".repeat(161);
    ws.write("in/accounts.csv", csv(rows.iter().cloned()));
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            &["app-1"],
            "mode = \"insert\"\nkey = \"accountnumber\"\nbatch_size = 100\nworkers = 1",
        ),
    );
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 299, 1),
        "{report}"
    );
    let book = ferry::book::Book::open(&p.state_dir, &p.name)
        .await
        .unwrap();
    let rejected = book.rejected("accounts").await.unwrap();
    assert_eq!(rejected.errors.len(), 1);
    assert!(
        rejected.errors[0].contains("maximum allowed length of '160'"),
        "{:?}",
        rejected.errors
    );
    let mut good = rows.clone();
    good.remove(137);
    assert_eq!(accounts(&emu).await, expected(&good));
    // Three CreateMultiple messages: two landed whole, one refused whole and sent again by $batch.
    let s = stats(&emu).await;
    assert_eq!(s["total"]["bulk_requests"], 3, "{s}");
    assert_eq!(s["total"]["records_written"], 299, "{s}");

    // Run again (insert over what is there): every group is refused for its duplicates, and
    // `$batch` skips the records that exist; nothing is written twice.
    let again = run_fresh(&p).await;
    assert_eq!(again.rows_written, 0, "{again}");
    assert_eq!(accounts(&emu).await, expected(&good));
    emu.stop().await;
}

const ELASTIC: &str = r#"
[sets.accounts]
entity = "account"
key = "accountid"
alternate_keys = [["accountnumber"]]
elastic = true
[sets.accounts.attributes]
name = { type = "string", max_length = 160, required = true }
accountnumber = { type = "string", max_length = 20 }
numberofemployees = { type = "int" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elastic_table_writes_all_but_the_refused_records_in_one_request() {
    let emu = start(Config {
        model: Model::from_toml(ELASTIC).unwrap(),
        ..quiet()
    })
    .await;
    let ws = Workspace::new();
    let mut rows = generated(0..200, "Account");
    rows[5].1 = String::new();
    rows[150].1 = "y".repeat(200);
    ws.write("in/accounts.csv", csv(rows.iter().cloned()));
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            &["app-1"],
            "mode = \"upsert\"\nkey = \"accountnumber\"\nbatch_size = 200\nworkers = 1",
        ),
    );
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written, report.rows_rejected),
        (Status::PartialSuccess, 198, 2),
        "{report}"
    );
    let book = ferry::book::Book::open(&p.state_dir, &p.name)
        .await
        .unwrap();
    let rejected = book.rejected("accounts").await.unwrap();
    let errors = &rejected.errors;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("required attribute 'name'")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("maximum allowed length")),
        "{errors:?}"
    );
    let keys: Vec<String> = (0..rejected.rows.num_rows())
        .map(|r| {
            arrow::util::display::array_value_to_string(
                rejected.rows.column_by_name("accountnumber").unwrap(),
                r,
            )
            .unwrap()
        })
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["A-00005", "A-00150"]);
    let good: Vec<_> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5 && *i != 150)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(accounts(&emu).await, expected(&good));
    // One request wrote them: no `$batch` fallback.
    let s = stats(&emu).await;
    assert_eq!(s["total"]["bulk_requests"], 1, "{s}");
    assert_eq!(s["total"]["records_written"], 198, "{s}");
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_without_bulk_messages_and_batch_mode_batch_go_by_batch() {
    let model = ELASTIC.replace("elastic = true", "bulk_messages = false");
    let emu = start(Config {
        model: Model::from_toml(&model).unwrap(),
        ..quiet()
    })
    .await;
    let ws = Workspace::new();
    let rows = generated(0..500, "Account");
    ws.write("in/accounts.csv", csv(rows.iter().cloned()));
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            &["app-1"],
            "mode = \"upsert\"\nkey = \"accountnumber\"\nbatch_size = 100\nworkers = 1",
        ),
    );
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 500),
        "{report}"
    );
    assert_eq!(accounts(&emu).await, expected(&rows));
    let s = stats(&emu).await;
    assert_eq!(s["total"]["bulk_requests"], 0, "{s}");
    // One refused message taught the sink: three reads of $metadata (validate, references, begin),
    // one 404, five $batches; a 404 for every batch would make ten.
    let requests = s["clients"]["app-1"]["requests"].as_u64().unwrap();
    assert_eq!(requests, 9, "{s}");
    emu.stop().await;

    let emu = start(quiet()).await;
    let ws = Workspace::new();
    ws.write("in/accounts.csv", csv(rows.iter().cloned()));
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            &["app-1"],
            "mode = \"upsert\"\nkey = \"accountnumber\"\nbatch_mode = \"batch\"",
        ),
    );
    let report = run(&p).await;
    assert_eq!(report.rows_written, 500, "{report}");
    assert_eq!(stats(&emu).await["total"]["bulk_requests"], 0);
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_messages_through_faults_and_limits_land_every_record_once() {
    let emu = start(Config {
        limits: Limits {
            window: std::time::Duration::from_secs(2),
            requests: 12,
            execution: std::time::Duration::from_secs(4),
            concurrency: 4,
            retry_after_fractions: true,
            ..Limits::default()
        },
        latency: Latency {
            base: std::time::Duration::from_millis(2),
            per_record: std::time::Duration::from_micros(200),
            jitter: 0.2,
            ..Latency::none()
        },
        faults: Faults {
            errors: 0.1,
            lost: 0.1,
            dropped: 0.05,
            writes_only: true,
            ..Faults::default()
        },
        ..Config::default()
    })
    .await;
    let ws = Workspace::new();
    let rows = generated(0..4000, "Account");
    ws.write("in/accounts.csv", csv(rows.iter().cloned()));
    let p = ws.pipeline(
        "p.toml",
        &pipeline(
            &emu,
            &["app-1", "app-2"],
            "mode = \"upsert\"\nkey = \"accountnumber\"\nbatch_size = 250",
        ),
    );
    let report = run(&p).await;
    assert_eq!(
        (report.status, report.rows_written),
        (Status::Completed, 4000),
        "{report}"
    );
    assert_eq!(accounts(&emu).await, expected(&rows));
    let s = stats(&emu).await;
    assert!(s["total"]["faults"].as_u64().unwrap() > 0, "{s}");
    assert!(s["total"]["bulk_requests"].as_u64().unwrap() >= 16, "{s}");
    assert_eq!(s["records"]["accounts"], 4000, "{s}");
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_headers_go_only_when_set_and_validate_names_a_user_without_the_privilege() {
    let emu = start(Config {
        without_bypass: vec!["app-2".into()],
        ..quiet()
    })
    .await;
    let ws = Workspace::new();
    let rows = generated(0..300, "Account");
    ws.write("in/accounts.csv", csv(rows.iter().cloned()));
    let bypass = "mode = \"upsert\"\nkey = \"accountnumber\"\nbypass_business_logic = \"CustomSync,CustomAsync\"";

    // Two users, the second without the privilege: validate says which, and the run does not start.
    let both = ws.write("both.toml", pipeline(&emu, &["app-1", "app-2"], bypass));
    let (code, out) = ferry_output(&["validate", &both.display().to_string()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("application user 2 lacks the privilege prvBypassCustomBusinessLogic"),
        "{out}"
    );
    assert!(!out.contains("application user 1 lacks"), "{out}");
    assert_eq!(stats(&emu).await["total"]["records_written"], 0);

    // The privileged user alone: every write asks for the bypass.
    let one = ws.pipeline("one.toml", &pipeline(&emu, &["app-1"], bypass));
    let report = run(&one).await;
    assert_eq!(report.rows_written, 300, "{report}");
    let s = stats(&emu).await;
    assert!(
        s["clients"]["app-1"]["bypass_requests"].as_u64().unwrap() >= 1,
        "{s}"
    );

    // Without the keys, no request carries the headers.
    let plain = ws.pipeline(
        "plain.toml",
        &pipeline(
            &emu,
            &["app-3"],
            "mode = \"upsert\"\nkey = \"accountnumber\"",
        ),
    );
    let report = run(&plain).await;
    assert_eq!(report.rows_written, 300, "{report}");
    let s = stats(&emu).await;
    assert_eq!(s["clients"]["app-3"]["bypass_requests"], 0, "{s}");
    assert!(
        s["clients"]["app-3"]["requests"].as_u64().unwrap() > 0,
        "{s}"
    );

    // Bypass on a service that is not Dataverse is refused where it is written.
    let generic = ws.write(
        "generic.toml",
        pipeline(
            &emu,
            &["app-1"],
            &format!("{bypass}\nbypass_plugins = true"),
        )
        .replace("kind = \"dataverse\"", "kind = \"odata\""),
    );
    let (code, out) = ferry_output(&["validate", &generic.display().to_string()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("bypass_business_logic is a Dataverse header"),
        "{out}"
    );
    emu.stop().await;
}
