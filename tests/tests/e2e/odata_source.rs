//! Dynamics as a source: an entity set of the emulator read by a pipeline into Delta (the seed's
//! "sync data back to the lakehouse"), typed from `$metadata`, paged by `@odata.nextLink`, a step's
//! filter pushed down, and partitioned over the key, a date-time and a number under the service's
//! limits and faults, with every record read exactly once.

use std::time::Duration;

use ferry_tests::{Workspace, ferry_output, read_delta};

async fn emulator(limits: ferry_emulator::limits::Limits, errors: f64) -> ferry_emulator::Running {
    ferry_emulator::start(
        ferry_emulator::Config {
            auth: false,
            limits,
            latency: ferry_emulator::Latency::none(),
            faults: ferry_emulator::Faults {
                errors,
                ..Default::default()
            },
            // The page of a client that asks for none (Ferry asks for its connection's page_size).
            page_size: 250,
            ..ferry_emulator::Config::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

const RECORDS: usize = 1200;

/// Writes RECORDS accounts into the service with a pipeline, as a migration would have.
fn seed(ws: &Workspace, url: &str) {
    let mut csv =
        String::from("accountnumber,name,numberofemployees,revenue,createdon,creditonhold\n");
    for i in 1..=RECORDS {
        csv.push_str(&format!(
            "A-{i:04},Account {i},{i},{}.25,2026-01-01T{:02}:{:02}:00Z,{}\n",
            i * 10,
            i / 60 % 24,
            i % 60,
            i % 2 == 0
        ));
    }
    ws.write("in/accounts.csv", &csv);
    let file = ws.write(
        "seed.toml",
        format!(
            "name = \"seed\"\n[connections.crm]\nurl = \"{url}\"\nkind = \"dataverse\"\n\
             [sources.a]\npath = \"in/accounts.csv\"\n\
             [[steps]]\nname = \"typed\"\nsql = \"SELECT accountnumber, name, CAST(numberofemployees AS INT) AS numberofemployees, \
             CAST(revenue AS DECIMAL(12, 2)) AS revenue, CAST(createdon AS TIMESTAMP) AS createdon, creditonhold FROM a\"\n\
             [target]\nconnection = \"crm\"\ntable = \"accounts\"\nmode = \"upsert\"\nkey = \"accountnumber\"\nbatch_size = 200\n"
        ),
    );
    let (code, out) = ferry_output(&["run", &file.display().to_string(), "--quiet"]);
    assert_eq!(code, 0, "{out}");
}

/// Reads the service's accounts into `out/<name>/` (Delta) with `source` keys and `sql`, in pages
/// of 100 (`page_size`): a read follows a dozen nextLinks.
fn read_into_delta(ws: &Workspace, url: &str, name: &str, source: &str, sql: &str) -> String {
    let file = ws.write(
        &format!("{name}.toml"),
        format!(
            "name = \"{name}\"\n[connections.crm]\nurl = \"{url}\"\nkind = \"dataverse\"\npage_size = 100\n\
             [sources.accounts]\nconnection = \"crm\"\ntable = \"accounts\"\n{source}\n\
             [[steps]]\nname = \"picked\"\nsql = \"{sql}\"\n\
             [target]\npath = \"out/{name}/\"\n"
        ),
    );
    let (code, out) = ferry_output(&["run", &file.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entity_set_is_read_typed_and_filtered_into_delta() {
    let emu = emulator(ferry_emulator::limits::Limits::off(), 0.0).await;
    let ws = Workspace::new();
    seed(&ws, &emu.url());
    read_into_delta(
        &ws,
        &emu.url(),
        "lake",
        "",
        "SELECT accountid, accountnumber, name, numberofemployees, revenue, createdon, creditonhold \
         FROM accounts WHERE numberofemployees > 1000 AND creditonhold = true",
    );
    let (schema, rows) = read_delta(
        &ws.join("out/lake"),
        "SELECT accountnumber, name, numberofemployees, revenue, createdon, creditonhold FROM t \
         ORDER BY accountnumber LIMIT 2",
    )
    .await;
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "Utf8View",
            "Utf8View",
            "Int32",
            "Decimal128(38, 10)",
            "Timestamp(µs, \"UTC\")",
            "Boolean"
        ],
        "typed from $metadata"
    );
    assert_eq!(
        rows,
        [
            [
                "A-1002",
                "Account 1002",
                "1002",
                "10020.25",
                "2026-01-01T16:42:00Z",
                "true"
            ],
            [
                "A-1004",
                "Account 1004",
                "1004",
                "10040.25",
                "2026-01-01T16:44:00Z",
                "true"
            ],
        ]
    );
    let (_, count) = read_delta(
        &ws.join("out/lake"),
        "SELECT count(*), count(DISTINCT accountid), min(length(accountid)) FROM t",
    )
    .await;
    assert_eq!(
        count,
        [["100", "100", "36"]],
        "every match once, with its GUID key"
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_over_the_key_a_date_and_a_number_read_each_record_once_under_limits_and_faults()
{
    // A service that throttles (10 requests a second) and fails one request in ten.
    let emu = emulator(
        ferry_emulator::limits::Limits {
            window: Duration::from_secs(1),
            requests: 10,
            retry_after_fractions: true,
            ..Default::default()
        },
        0.1,
    )
    .await;
    let ws = Workspace::new();
    seed(&ws, &emu.url());
    for (name, column) in [
        ("by_key", "accountid"),
        ("by_date", "createdon"),
        ("by_number", "numberofemployees"),
    ] {
        read_into_delta(
            &ws,
            &emu.url(),
            name,
            &format!("partitions = 4\npartition_column = \"{column}\""),
            "SELECT accountnumber, numberofemployees FROM accounts",
        );
        let (_, count) = read_delta(
            &ws.join(&format!("out/{name}")),
            "SELECT count(*), count(DISTINCT accountnumber), sum(numberofemployees) FROM t",
        )
        .await;
        let total = RECORDS * (RECORDS + 1) / 2;
        assert_eq!(
            count,
            [[RECORDS.to_string(), RECORDS.to_string(), total.to_string()]],
            "{name}: every record exactly once"
        );
    }
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_or_a_missing_entity_set_is_refused_with_what_to_write() {
    let emu = emulator(ferry_emulator::limits::Limits::off(), 0.0).await;
    let ws = Workspace::new();
    for (connection, source, expected) in [
        ("", "table = \"acounts\"", "has no entity set \"acounts\""),
        (
            "",
            "query = \"SELECT 1\"",
            "an OData source reads an entity set",
        ),
        (
            "page_size = 6000",
            "table = \"accounts\"",
            "page_size = 6000 is not a page Dataverse serves",
        ),
    ] {
        let file = ws.write(
            "bad.toml",
            format!(
                "name = \"bad\"\n[connections.crm]\nurl = \"{}\"\nkind = \"dataverse\"\n{connection}\n\
                 [sources.accounts]\nconnection = \"crm\"\n{source}\n[target]\npath = \"out/bad/\"\n",
                emu.url()
            ),
        );
        let (code, out) = ferry_output(&["run", &file.display().to_string()]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(expected), "{out}");
    }
    emu.stop().await;
}

/// A service that fails a request now and then (500/503, one in ten): `$metadata` and every page
/// are asked again, so each of sixteen runs reads every record once. (A `$metadata`
/// that failed once used to fail the run at its source's line.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_pages_are_asked_again_when_the_service_fails_a_read() {
    let emu = emulator(ferry_emulator::limits::Limits::off(), 0.1).await;
    let ws = Workspace::new();
    seed(&ws, &emu.url());
    for run in 0..16 {
        let name = format!("flaky_{run}");
        read_into_delta(
            &ws,
            &emu.url(),
            &name,
            "",
            "SELECT accountnumber, numberofemployees FROM accounts",
        );
        let (_, rows) = read_delta(
            &ws.join(&format!("out/{name}")),
            "SELECT accountnumber, numberofemployees FROM t ORDER BY accountnumber",
        )
        .await;
        let expected: Vec<Vec<String>> = (1..=RECORDS)
            .map(|i| vec![format!("A-{i:04}"), i.to_string()])
            .collect();
        assert_eq!(rows, expected, "{name}: every record once, as seeded");
    }
    emu.stop().await;
}
