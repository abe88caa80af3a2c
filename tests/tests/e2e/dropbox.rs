//! `ferry dropbox`: a delivery of workbooks and a JSON of options lands in lookup order in a real
//! PostgreSQL (foreign keys would refuse any other order), the refused rows come back as a workbook
//! and, corrected, land; a duplicate is recognised; a bad JSON rejects the delivery whole; a killed
//! run is run again with nothing lost or doubled; a file still being written is not taken; `watch`
//! takes a drop once it is stable.

use std::path::Path;
use std::process::Stdio;

use ferry_tests::db::{Server, TestDb};
use ferry_tests::{Workspace, ferry_command, read_workbook, rows, sqlite_rows, write_workbook};
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

use ferry_tests::ferry_output as ferry;

/// A dropbox folder writing to `url`, files taken once unchanged for `stable_for`.
fn dropbox(ws: &Workspace, url: &str, stable_for: &str, extra: &str) -> String {
    ws.write(
        "drop/dropbox.toml",
        format!(
            r#"name = "crm-load"
[connections.target]
url = "{url}"
[dropbox]
connection = "target"
stable_for = "{stable_for}"
{extra}
"#
        ),
    );
    std::fs::create_dir_all(ws.join("drop/inbox")).unwrap();
    ws.join("drop").display().to_string()
}

/// The accounts workbook as a business user saves it: codes with leading zeros as text, a date
/// cell, a formula, and an empty row in the middle.
fn accounts_workbook(path: &Path) {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in ["Account No", "Name", "Opened"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    sheet.write_string(1, 0, "00123").unwrap();
    sheet.write_string(1, 1, "Acme").unwrap();
    let day = ExcelDateTime::from_ymd(2024, 2, 29).unwrap();
    sheet.write_datetime_with_format(1, 2, &day, &date).unwrap();
    // Row 3 is left empty.
    sheet.write_string(3, 0, "00456").unwrap();
    sheet
        .write_formula(3, 1, Formula::new("=\"Glo\"&\"bex\"").set_result("Globex"))
        .unwrap();
    let day = ExcelDateTime::from_ymd(2025, 12, 31).unwrap();
    sheet.write_datetime_with_format(3, 2, &day, &date).unwrap();
    book.save(path).unwrap();
}

fn text_workbook(path: &Path, header: &[&str], body: &[&[&str]]) {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let body: Vec<Vec<String>> = body
        .iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect();
    write_workbook(path, &header, &body, &[]);
}

const DELIVERY: &str = r#"{
  "c_accounts.xlsx": {
    "target_entity": "account",
    "key": ["accountnumber"],
    "rename": { "Account No": "accountnumber", "Name": "name", "Opened": "opened" }
  },
  "b_contacts.xlsx": { "target_entity": "contact", "key": ["email"], "after": ["account"] },
  "a_notes.csv": { "target_entity": "note", "key": ["id"], "after": ["contact"] }
}"#;

/// Three entities whose foreign keys admit one order only; the files are named so that their
/// alphabetical order is the wrong one.
async fn crm(db: &TestDb) {
    db.exec(
        "CREATE TABLE account (accountnumber TEXT PRIMARY KEY, name TEXT NOT NULL, opened DATE); \
         CREATE TABLE contact (email TEXT PRIMARY KEY, accountnumber TEXT NOT NULL REFERENCES account, fullname TEXT); \
         CREATE TABLE note (id BIGINT PRIMARY KEY, email TEXT REFERENCES contact, body TEXT)",
    )
    .await;
}

fn deliver(ws: &Workspace) {
    accounts_workbook(&ws.join("drop/inbox/c_accounts.xlsx"));
    text_workbook(
        &ws.join("drop/inbox/b_contacts.xlsx"),
        &["email", "accountnumber", "fullname"],
        &[
            &["ann@acme.test", "00123", "Ann"],
            &["bob@globex.test", "00456", "Bob"],
            // No such account: refused by the foreign key, handed back.
            &["cy@nowhere.test", "00999", "Cy"],
        ],
    );
    ws.write(
        "drop/inbox/a_notes.csv",
        "id,email,body\n1,ann@acme.test,called\n2,bob@globex.test,\"wrote, twice\"\n",
    );
    ws.write("drop/inbox/delivery.json", DELIVERY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_lands_in_lookup_order_and_its_refused_rows_come_back_and_land() {
    let db = TestDb::new(Server::Postgres).await;
    crm(&db).await;
    let ws = Workspace::new();
    let drop = dropbox(&ws, &db.url(), "0s", "");
    deliver(&ws);
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 3, "one contact is refused: {printed}");
    assert_eq!(
        db.rows("SELECT accountnumber, name, opened::text FROM account")
            .await,
        rows(&[
            &["00123", "Acme", "2024-02-29"],
            &["00456", "Globex", "2025-12-31"]
        ]),
        "{printed}"
    );
    assert_eq!(
        db.rows("SELECT email, accountnumber FROM contact").await,
        rows(&[&["ann@acme.test", "00123"], &["bob@globex.test", "00456"]])
    );
    assert_eq!(
        db.rows("SELECT id, email, body FROM note").await,
        rows(&[
            &["1", "ann@acme.test", "called"],
            &["2", "bob@globex.test", "wrote, twice"]
        ])
    );
    // Everything taken was archived; the inbox is empty.
    assert_eq!(std::fs::read_dir(ws.join("drop/inbox")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(ws.join("drop/archive")).unwrap().count(),
        4
    );
    // The manifest, as `status --json` gives it.
    let (code, status) = ferry(&["dropbox", "status", &drop, "--json"]);
    assert_eq!(code, 0, "{status}");
    let entries: Vec<serde_json::Value> = status
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |file: &str| entries.iter().find(|e| e["file"] == file).unwrap().clone();
    assert_eq!(of("c_accounts.xlsx")["status"], "done");
    assert_eq!(
        of("c_accounts.xlsx")["rows_staged"],
        2,
        "the empty row is skipped"
    );
    assert_eq!(of("b_contacts.xlsx")["status"], "partial");
    assert_eq!(of("b_contacts.xlsx")["rows_quarantined"], 1);
    assert_eq!(of("a_notes.csv")["status"], "done");

    // The refused contact is handed back; corrected and dropped back, it lands.
    let handed = ws.join("drop/outbox/contact.quarantine.xlsx");
    let (header, body) = read_workbook(&handed);
    assert_eq!(body.len(), 1, "{body:?}");
    let account = header.iter().position(|h| h == "accountnumber").unwrap();
    let mut corrected = body.clone();
    assert_eq!(corrected[0][account], "00999");
    corrected[0][account] = "00456".into();
    write_workbook(
        &ws.join("drop/inbox/contact.quarantine.xlsx"),
        &header,
        &corrected,
        &[],
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    assert_eq!(
        db.rows("SELECT email, accountnumber FROM contact").await,
        rows(&[
            &["ann@acme.test", "00123"],
            &["bob@globex.test", "00456"],
            &["cy@nowhere.test", "00456"]
        ])
    );

    // A file named like no table of the target: refused before anything is written.
    ws.write(
        "drop/inbox/acounts.csv",
        "accountnumber,name\n00777,Typo Ltd\n",
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 2, "{printed}");
    assert!(printed.contains("acounts"), "{printed}");
    assert_eq!(
        db.rows("SELECT accountnumber, name FROM account").await,
        rows(&[&["00123", "Acme"], &["00456", "Globex"]])
    );
    assert_eq!(
        db.rows("SELECT count(*) FROM information_schema.tables WHERE table_name = 'acounts'")
            .await,
        rows(&[&["0"]])
    );

    // The same workbook dropped again (the archived bytes, under another name): recognised by
    // its content, archived, not migrated.
    let archived = std::fs::read_dir(ws.join("drop/archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-c_accounts.xlsx"))
        .unwrap();
    std::fs::copy(archived, ws.join("drop/inbox/accounts again.xlsx")).unwrap();
    db.exec("UPDATE account SET name = 'Acme Corp' WHERE accountnumber = '00123'")
        .await;
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    assert!(
        printed.contains("the same content as c_accounts.xlsx"),
        "{printed}"
    );
    assert_eq!(
        db.rows("SELECT name FROM account WHERE accountnumber = '00123'")
            .await,
        rows(&[&["Acme Corp"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dropbox_run_is_run_again_with_nothing_lost_or_doubled() {
    let db = TestDb::new(Server::Postgres).await;
    crm(&db).await;
    let ws = Workspace::new();
    // One row a batch: the run is killed inside the second entity.
    let drop = dropbox(&ws, &db.url(), "0s", "batch_size = 1");
    deliver(&ws);
    kill_at_batch(&drop, 3);
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 3, "{printed}");
    assert_eq!(
        db.rows("SELECT accountnumber, name, opened::text FROM account")
            .await,
        rows(&[
            &["00123", "Acme", "2024-02-29"],
            &["00456", "Globex", "2025-12-31"]
        ])
    );
    assert_eq!(
        db.rows("SELECT email FROM contact").await,
        rows(&[&["ann@acme.test"], &["bob@globex.test"]]),
        "{printed}"
    );
    assert_eq!(
        db.rows("SELECT id, email, body FROM note").await,
        rows(&[
            &["1", "ann@acme.test", "called"],
            &["2", "bob@globex.test", "wrote, twice"]
        ])
    );
    // One refused row in the handed-back workbook, not two.
    let (_, body) = read_workbook(&ws.join("drop/outbox/contact.quarantine.xlsx"));
    assert_eq!(body.len(), 1, "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_json_rejects_its_delivery_whole_naming_the_line() {
    let ws = Workspace::new();
    let drop = dropbox(&ws, "sqlite://out/crm.db", "0s", "create = true");
    ws.write("drop/inbox/items.csv", "id,name\n1,a\n");
    ws.write(
        "drop/inbox/delivery.json",
        "{\n  \"items.csv\": {\n    \"target_entity\": \"item\",\n    \"overwrite_all\": true\n  }\n}\n",
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 2, "{printed}");
    assert!(!ws.join("drop/out/crm.db").exists(), "nothing was written");
    let rejected: Vec<String> = std::fs::read_dir(ws.join("drop/rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        rejected.len(),
        4,
        "both files and their reasons: {rejected:?}"
    );
    let note = rejected
        .iter()
        .find(|n| n.ends_with("delivery.json.error.txt"))
        .unwrap();
    let why = std::fs::read_to_string(ws.join("drop/rejected").join(note)).unwrap();
    assert!(
        why.contains("delivery.json:4:") && why.contains("unknown field `overwrite_all`"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_still_being_written_wait_and_an_unreadable_workbook_is_rejected() {
    let ws = Workspace::new();
    let drop = dropbox(&ws, "sqlite://out/crm.db", "2s", "create = true");
    ws.write("drop/inbox/items.csv", "id,name\n1,a\n2,b\n");
    ws.write("drop/inbox/~$items.xlsx", "a lock file of Excel's");
    ws.write("drop/inbox/people.csv.part", "id,name\n1,");
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("items.csv: changed 0s ago"), "{printed}");
    assert!(!ws.join("drop/out/crm.db").exists());
    std::thread::sleep(std::time::Duration::from_millis(2200));
    ws.write("drop/inbox/broken.xlsx", "not a workbook at all");
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    assert_eq!(
        sqlite_rows(&ws.join("drop/out/crm.db"), "SELECT id, name FROM items"),
        rows(&[&["1", "a"], &["2", "b"]])
    );
    // The temporary names stay where they are; the broken workbook, once stable, is rejected.
    assert!(ws.join("drop/inbox/~$items.xlsx").exists());
    assert!(ws.join("drop/inbox/people.csv.part").exists());
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 2, "{printed}");
    let note = std::fs::read_dir(ws.join("drop/rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("broken.xlsx.error.txt"))
        .expect("the reason beside the file");
    let why = std::fs::read_to_string(note).unwrap();
    assert!(why.contains("broken.xlsx"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_takes_a_drop_once_it_is_stable() {
    let ws = Workspace::new();
    let drop = dropbox(&ws, "sqlite://out/crm.db", "1s", "create = true");
    let mut child = ferry_command()
        .args(["dropbox", "watch", &drop])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    ws.write("drop/inbox/items.csv", "id,name\n1,a\n");
    let db = ws.join("drop/out/crm.db");
    let mut landed = Vec::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if db.exists() {
            landed = sqlite_rows(&db, "SELECT id, name FROM items");
            if !landed.is_empty() {
                break;
            }
        }
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let ended = child.wait().unwrap();
    assert_eq!(landed, rows(&[&["1", "a"]]));
    assert!(ended.success(), "watch ends cleanly on SIGTERM: {ended:?}");
}

/// A dropbox into the Dataverse-like emulator: `atomic` over 1,000 records is refused before
/// anything is written; within the limit, the entity lands in one changeset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_entities_on_dataverse_fit_one_changeset_or_are_refused_before_writing() {
    let emu = ferry_tests::quiet_emulator().await;
    let ws = Workspace::new();
    let connection = format!(
        "{}\"\nkind = \"dataverse\"\nauth = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"app-1\"\nclient_secret = \"s3cret",
        emu.url(),
        emu.token_url()
    );
    let drop = dropbox(&ws, &connection, "0s", "");
    let csv = |n: usize| {
        let mut text = String::from("accountnumber,name\n");
        for i in 0..n {
            text.push_str(&format!("A-{i:05},Account {i}\n"));
        }
        text
    };
    ws.write("drop/inbox/accounts.csv", csv(1_200));
    ws.write(
        "drop/inbox/delivery.json",
        r#"{ "accounts.csv": { "key": ["accountnumber"], "atomic": true } }"#,
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 2, "{printed}");
    assert!(
        printed.contains("1200 records do not fit one changeset (at most 1000)"),
        "{printed}"
    );
    let service = emu.url();
    let none =
        ferry_tests::odata_records(&service, &emu.token_url(), "accounts", "accountnumber").await;
    assert!(none.is_empty(), "nothing written: {none:?}");

    ws.write("drop/inbox/accounts.csv", csv(300));
    ws.write(
        "drop/inbox/delivery.json",
        r#"{ "accounts.csv": { "key": ["accountnumber"], "atomic": true } }"#,
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    let landed =
        ferry_tests::odata_records(&service, &emu.token_url(), "accounts", "accountnumber").await;
    let mut numbers: Vec<String> = landed
        .iter()
        .map(|r| r["accountnumber"].as_str().unwrap().to_string())
        .collect();
    numbers.sort();
    let expected: Vec<String> = (0..300).map(|i| format!("A-{i:05}")).collect();
    assert_eq!(numbers, expected);
    assert!(!printed.contains("s3cret"), "{printed}");
}

/// Kills `ferry dropbox run DIR` at its `nth` written batch.
fn kill_at_batch(drop: &str, nth: usize) {
    ferry_tests::kill_at(&["dropbox", "run", drop], &format!("batch_written:{nth}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_file_of_an_entity_waits_for_the_first_unless_it_overwrites() {
    let ws = Workspace::new();
    let drop = dropbox(
        &ws,
        "sqlite://out/crm.db",
        "0s",
        "create = true\nbatch_size = 1",
    );
    let db = ws.join("drop/out/crm.db");
    let json = r#"{ "items.csv": { "key": ["id"] } }"#;
    ws.write("drop/inbox/items.csv", "id,name\n1,a\n2,b\n3,c\n");
    ws.write("drop/inbox/delivery.json", json);
    kill_at_batch(&drop, 1);
    // A new version arrives while the first is half-migrated: it waits, the first finishes, then
    // the new one lands, in the same run.
    ws.write("drop/inbox/items.csv", "id,name\n1,A\n2,B\n3,C\n4,D\n");
    ws.write("drop/inbox/delivery.json", json);
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("waits until items.csv"), "{printed}");
    assert_eq!(
        sqlite_rows(&db, "SELECT id, name FROM items"),
        rows(&[&["1", "A"], &["2", "B"], &["3", "C"], &["4", "D"]])
    );
    // With overwrite, a new version replaces a half-migrated one at once: it is superseded.
    ws.write("drop/inbox/items.csv", "id,name\n1,x\n2,y\n3,z\n");
    ws.write("drop/inbox/delivery.json", json);
    kill_at_batch(&drop, 1);
    ws.write("drop/inbox/items.csv", "id,name\n1,one\n");
    ws.write(
        "drop/inbox/delivery.json",
        r#"{ "items.csv": { "key": ["id"], "mode": "truncate", "overwrite": true } }"#,
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    assert_eq!(
        sqlite_rows(&db, "SELECT id, name FROM items"),
        rows(&[&["1", "one"]])
    );
    let (_, status) = ferry(&["dropbox", "status", &drop, "--json"]);
    let statuses: Vec<String> = status
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses, ["done", "done", "superseded", "done"], "{status}");
}

/// Finance & Operations: two workbooks of the same entity for two legal entities, each written
/// to its own company (`legal_entity` -> dataAreaId), the second after the first is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fno_workbooks_land_in_their_legal_entities() {
    let emu = ferry_tests::open_emulator(
        "[sets.CustomersV3]\nentity = \"CustomerV3\"\nkey = \"CustomerId\"\nalternate_keys = [[\"dataAreaId\", \"CustomerAccount\"]]\n\
         [sets.CustomersV3.attributes]\ndataAreaId = { type = \"string\", max_length = 4, required = true }\n\
         CustomerAccount = { type = \"string\", max_length = 20 }\nName = { type = \"string\", max_length = 100 }\n",
    )
    .await;
    let ws = Workspace::new();
    let drop = dropbox(&ws, &format!("{}\"\nkind = \"fno", emu.url()), "0s", "");
    text_workbook(
        &ws.join("drop/inbox/customers-us.xlsx"),
        &["CustomerAccount", "Name"],
        &[&["C-001", "Contoso US"], &["C-002", "Fabrikam US"]],
    );
    text_workbook(
        &ws.join("drop/inbox/customers-de.xlsx"),
        &["CustomerAccount", "Name"],
        &[&["C-001", "Contoso DE"]],
    );
    ws.write(
        "drop/inbox/delivery.json",
        r#"{
  "customers-us.xlsx": { "target_entity": "CustomersV3", "key": ["CustomerAccount"], "legal_entity": "usmf" },
  "customers-de.xlsx": { "target_entity": "CustomersV3", "key": ["CustomerAccount"], "legal_entity": "demf" }
}"#,
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 0, "{printed}");
    let records = ferry_tests::odata_records(
        &emu.url(),
        &emu.token_url(),
        "CustomersV3",
        "dataAreaId,CustomerAccount,Name",
    )
    .await;
    let mut landed: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("dataAreaId"), s("CustomerAccount"), s("Name"))
        })
        .collect();
    landed.sort();
    let row = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        landed,
        [
            row("demf", "C-001", "Contoso DE"),
            row("usmf", "C-001", "Contoso US"),
            row("usmf", "C-002", "Fabrikam US")
        ],
        "{printed}"
    );
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbook_with_merged_header_cells_is_rejected_naming_them() {
    let ws = Workspace::new();
    let drop = dropbox(&ws, "sqlite://out/crm.db", "0s", "create = true");
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "id").unwrap();
    sheet
        .merge_range(0, 1, 0, 2, "Address", &Format::new())
        .unwrap();
    sheet.write_number(1, 0, 1.0).unwrap();
    sheet.write_string(1, 1, "1 Main St").unwrap();
    sheet.write_string(1, 2, "Springfield").unwrap();
    book.save(ws.join("drop/inbox/people.xlsx")).unwrap();
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 2, "{printed}");
    let note = std::fs::read_dir(ws.join("drop/rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("people.xlsx.error.txt"))
        .expect("the reason beside the file");
    let why = std::fs::read_to_string(note).unwrap();
    assert!(why.contains("the header cells B1:C1 are merged"), "{why}");
    assert!(!ws.join("drop/out/crm.db").exists());
}

/// Without `order` or `after`, a delivery lands in the target's lookup order: contacts point to
/// accounts in the emulator's `$metadata`, so accounts land first even though the contacts file
/// comes first, and every contact's bind finds its account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_land_in_the_order_of_the_targets_lookups() {
    let emu = ferry_tests::quiet_emulator().await;
    let ws = Workspace::new();
    let connection = format!(
        "{}\"\nkind = \"dataverse\"\nauth = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"app-1\"\nclient_secret = \"s3cret",
        emu.url(),
        emu.token_url()
    );
    let drop = dropbox(&ws, &connection, "0s", "");
    contacts_dropped_first(
        &ws,
        &drop,
        "emailaddress1,lastname,parentcustomerid@odata.bind\n\
         ana@contoso.example,Lima,/accounts(accountnumber='A-1')\n\
         bo@fabrikam.example,Berg,/accounts(accountnumber='A-2')\n",
        "accountnumber,name\nA-1,Contoso\nA-2,Fabrikam\n",
        r#"{ "a-contacts.csv": { "target_entity": "contacts", "key": ["emailaddress1"] },
  "b-accounts.csv": { "target_entity": "accounts", "key": ["accountnumber"] } }"#,
        "contacts: after accounts (its lookups in the target's $metadata)",
    );
    let read = async |set: &str, select: &str| {
        ferry_tests::odata_records(&emu.url(), &emu.token_url(), set, select).await
    };
    let accounts = read("accounts", "accountid,accountnumber").await;
    let number_of = |id: &serde_json::Value| {
        accounts
            .iter()
            .find(|a| a["accountid"] == *id)
            .map(|a| a["accountnumber"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "no account".into())
    };
    let mut contacts: Vec<Vec<String>> = read("contacts", "emailaddress1,_parentcustomerid_value")
        .await
        .iter()
        .map(|c| {
            vec![
                c["emailaddress1"].as_str().unwrap().to_string(),
                number_of(&c["_parentcustomerid_value"]),
            ]
        })
        .collect();
    contacts.sort();
    assert_eq!(
        contacts,
        rows(&[
            &["ana@contoso.example", "A-1"],
            &["bo@fabrikam.example", "A-2"]
        ]),
        "every contact points to its own account"
    );
}

/// The same on SQL targets: without `order` or `after`, contacts wait for the accounts their
/// foreign key points to, though their file comes first. `rows` reads the target's contacts.
async fn contacts_wait_for_their_accounts(
    url: &str,
    contacts: impl AsyncFnOnce() -> Vec<Vec<String>>,
) {
    let ws = Workspace::new();
    let drop = dropbox(&ws, url, "0s", "");
    contacts_dropped_first(
        &ws,
        &drop,
        "email,account_id\nana@contoso.example,A-1\nbo@fabrikam.example,A-2\n",
        "id,name\nA-1,Contoso\nA-2,Fabrikam\n",
        r#"{ "a-contacts.csv": { "target_entity": "contact", "key": ["email"] },
  "b-accounts.csv": { "target_entity": "account", "key": ["id"] } }"#,
        "contact: after account (its foreign keys in the target)",
    );
    assert_eq!(
        contacts().await,
        rows(&[
            &["ana@contoso.example", "A-1"],
            &["bo@fabrikam.example", "A-2"]
        ])
    );
}

const ACCOUNTS_AND_CONTACTS: &str =
    "CREATE TABLE account (id varchar(20) PRIMARY KEY, name varchar(100) NOT NULL);
     CREATE TABLE contact (email varchar(100) PRIMARY KEY, account_id varchar(20) NOT NULL,
                           FOREIGN KEY (account_id) REFERENCES account(id))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_entities_land_in_the_order_of_the_targets_foreign_keys() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec(ACCOUNTS_AND_CONTACTS).await;
    contacts_wait_for_their_accounts(&db.url(), async || {
        db.rows("SELECT email, account_id FROM contact").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_entities_land_in_the_order_of_the_targets_foreign_keys() {
    let db = TestDb::new(Server::Mysql).await;
    db.exec(ACCOUNTS_AND_CONTACTS).await;
    contacts_wait_for_their_accounts(&db.url(), async || {
        db.rows("SELECT email, account_id FROM contact").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_entities_land_in_the_order_of_the_targets_foreign_keys() {
    let dir = Workspace::new();
    let file = dir.join("crm.db");
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA foreign_keys = ON; {ACCOUNTS_AND_CONTACTS}"
        ))
        .unwrap();
    contacts_wait_for_their_accounts(&format!("sqlite://{}", file.display()), async || {
        sqlite_rows(&file, "SELECT email, account_id FROM contact")
    })
    .await;
}

/// `atomic` on a SQL target: the entity is one transaction. A file with one row the database
/// refuses lands nothing (every row goes back in the outbox workbook with the reason); without
/// `atomic` the good rows land and only the bad one comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_entities_on_sql_land_whole_or_not_at_all() {
    let db = TestDb::new(Server::Postgres).await;
    db.exec("CREATE TABLE item (code text PRIMARY KEY, price numeric(10,2) NOT NULL)")
        .await;
    let ws = Workspace::new();
    let drop = dropbox(&ws, &db.url(), "0s", "");
    let file = "code,price\nI-1,10.50\nI-2,\nI-3,7.25\n";
    ws.write("drop/inbox/items.csv", file);
    ws.write(
        "drop/inbox/delivery.json",
        r#"{ "items.csv": { "target_entity": "item", "key": ["code"], "atomic": true } }"#,
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 3, "rows refused: {printed}");
    assert!(
        db.rows("SELECT code FROM item").await.is_empty(),
        "nothing landed"
    );
    let (_, refused) = read_workbook(&ws.join("drop/outbox/item.quarantine.xlsx"));
    assert_eq!(refused.len(), 3, "every row back: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r[0].contains("refused whole (atomic)")),
        "{refused:?}"
    );

    ws.write(
        "drop/inbox/items2.csv",
        "code,price\nJ-1,1.00\nJ-2,\nJ-3,3.00\n",
    );
    ws.write(
        "drop/inbox/delivery.json",
        r#"{ "items2.csv": { "target_entity": "item", "key": ["code"], "overwrite": true } }"#,
    );
    let (code, printed) = ferry(&["dropbox", "run", &drop]);
    assert_eq!(code, 3, "{printed}");
    assert_eq!(
        db.rows("SELECT code FROM item").await,
        rows(&[&["J-1"], &["J-3"]]),
        "without atomic the good rows land"
    );
}

/// Drops a contacts file named to come before its accounts file, with `delivery` naming neither
/// order nor after, runs the dropbox, and expects every row to land with the run saying `said`.
fn contacts_dropped_first(
    ws: &Workspace,
    drop: &str,
    contacts: &str,
    accounts: &str,
    delivery: &str,
    said: &str,
) {
    ws.write("drop/inbox/a-contacts.csv", contacts);
    ws.write("drop/inbox/b-accounts.csv", accounts);
    ws.write("drop/inbox/delivery.json", delivery);
    let (code, printed) = ferry(&["dropbox", "run", drop]);
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains(said), "{printed}");
}
