//! `ferry serve` over real HTTP and in a real headless Chromium: a run with rejected rows, seen from
//! the overview down to the failing batch, its quarantined rows and their workbook (clicked through
//! and downloaded in the browser); a run in progress whose page follows it live; the jobs and
//! dropbox pages; values escaped; a token required off loopback.

use std::time::Duration;

use fantoccini::Locator;
use ferry_tests::browser::{Browser, publish, serve};
use ferry_tests::{Workspace, ferry_command, ferry_output, read_delta, read_workbook};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the dashboard answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The first `href` in `page` that starts with `prefix`.
fn link(page: &str, prefix: &str) -> String {
    let at = page
        .find(&format!("href=\"{prefix}"))
        .unwrap_or_else(|| panic!("no link to {prefix} in {page}"));
    let rest = &page[at + 6..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A run into SQLite whose second row breaks a CHECK constraint (and whose name is HTML): Partial
/// Success, one row in quarantine. Returns the state dir.
fn partial_success(ws: &Workspace) -> String {
    rusqlite::Connection::open(ws.join("crm.db"))
        .unwrap()
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, credit INTEGER CHECK (credit >= 0))")
        .unwrap();
    ws.write(
        "in/accounts.csv",
        "id,name,credit\n1,Contoso,10\n2,<b>Fabrikam</b>,-5\n3,Initech,7\n",
    );
    let file = ws.write(
        "accounts.toml",
        "name = \"accounts\"\n[connections.db]\nurl = \"sqlite://crm.db\"\n[sources.a]\npath = \"in/accounts.csv\"\n\
         [target]\nconnection = \"db\"\ntable = \"accounts\"\nmode = \"upsert\"\nkey = \"id\"\n",
    );
    let (code, out) = ferry_output(&["run", &file.display().to_string(), "--quiet"]);
    assert_eq!(code, 3, "{out}");
    ws.join(".ferry").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_is_followed_down_to_its_rows_and_their_workbook() {
    let ws = Workspace::new();
    let state = partial_success(&ws);
    let server = serve(&["--state-dir", &state]);
    let (status, home) = get(&format!("{}/", server.url)).await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("Partial Success"), "{home}");
    let (_, pipeline) = get(&format!(
        "{}{}",
        server.url,
        link(&home, "/pipelines/accounts")
    ))
    .await;
    let (_, run) = get(&format!(
        "{}{}",
        server.url,
        link(&pipeline, "/runs/accounts/")
    ))
    .await;
    assert!(run.contains("Errors by cause"), "{run}");
    assert!(run.contains("CHECK constraint failed"), "{run}");
    let (_, rows) = get(&format!(
        "{}{}",
        server.url,
        link(&run, "/quarantine/accounts")
    ))
    .await;
    assert!(rows.contains("1 unresolved rows"), "{rows}");
    assert!(
        rows.contains("&lt;b&gt;Fabrikam&lt;/b&gt;") && !rows.contains("<b>Fabrikam"),
        "values are escaped: {rows}"
    );
    let workbook = reqwest::get(format!(
        "{}{}",
        server.url,
        link(&rows, "/quarantine/accounts.xlsx")
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    std::fs::write(ws.join("downloaded.xlsx"), &workbook).unwrap();
    let (header, cells) = read_workbook(&ws.join("downloaded.xlsx"));
    assert!(header.contains(&"credit".to_string()), "{header:?}");
    assert_eq!(cells.len(), 1, "{cells:?}");
    assert!(
        cells[0].contains(&"<b>Fabrikam</b>".to_string()),
        "{cells:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_a_token_is_required() {
    let ws = Workspace::new();
    let state = ws.join(".ferry").display().to_string();
    let (code, out) = ferry_output(&[
        "serve",
        "--state-dir",
        &state,
        "--bind",
        "0.0.0.0",
        "--port",
        "0",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("give a token"), "{out}");

    let server = serve(&["--state-dir", &state, "--token", "s3cret-token"]);
    let (status, _) = get(&format!("{}/", server.url)).await;
    assert_eq!(status, 401);
    let (status, page) = get(&format!("{}/?token=s3cret-token", server.url)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No run yet"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_failing_object_is_clicked_down_to_its_rows_and_workbook() {
    let ws = Workspace::new();
    let state = partial_success(&ws);
    let server = serve(&["--state-dir", &state]);
    let browser = Browser::start("failing_object").await;
    let b = &browser.client;
    b.goto(&format!("{}/", server.url)).await.unwrap();
    // The failing object first, with its figures and a progress bar of the rows it read.
    let first = browser.text("table tbody tr:first-child").await;
    assert!(
        first.starts_with("accounts") && first.contains("Partial Success"),
        "{first}"
    );
    let progress = b
        .find(Locator::Css("table tbody tr:first-child progress"))
        .await
        .unwrap();
    assert_eq!(
        (
            progress.attr("value").await.unwrap(),
            progress.attr("max").await.unwrap()
        ),
        (Some("3".into()), Some("3".into())),
        "2 written + 1 quarantined of 3 read"
    );
    browser.screenshot("overview").await;

    browser.click_link("accounts").await;
    let run_link = b
        .find(Locator::Css("table tbody tr:first-child td:first-child a"))
        .await
        .unwrap();
    run_link.click().await.unwrap();
    browser
        .wait_for("the run page", async || {
            b.current_url()
                .await
                .ok()
                .filter(|u| u.path().starts_with("/runs/"))
        })
        .await;
    // The figures the bookkeeping holds: 2 rows written, the cause of the refused one.
    let (_, log) = read_delta(
        &ws.join(".ferry/log"),
        "SELECT count(*), sum(rows_written) FROM t",
    )
    .await;
    assert_eq!(
        [
            browser.text("#batches").await,
            browser.text("#written").await
        ],
        [log[0][0].clone(), "2".to_string()]
    );
    assert!(browser.text("p.partial").await.contains("1 rejected"));
    let causes = browser.text("h2 + table").await;
    assert!(
        causes.contains("a check constraint rejected a value"),
        "{causes}"
    );
    assert_eq!(
        b.find_all(Locator::Css("figure svg")).await.unwrap().len(),
        3
    );
    let bars = b
        .find_all(Locator::Css("figure svg rect title"))
        .await
        .unwrap();
    assert!(!bars.is_empty(), "the charts draw the batch");
    browser.screenshot("run").await;

    browser.click_link("quarantine/accounts").await;
    // The name arrives as text, not as markup.
    let cells = b.find_all(Locator::Css("tbody td")).await.unwrap();
    let mut texts = Vec::new();
    for c in cells {
        texts.push(c.text().await.unwrap());
    }
    assert!(texts.contains(&"<b>Fabrikam</b>".to_string()), "{texts:?}");
    assert!(
        b.find_all(Locator::Css("tbody b"))
            .await
            .unwrap()
            .is_empty()
    );
    // Filtered by its cause, through the cause's link.
    browser
        .click_link("a check constraint rejected a value")
        .await;
    assert!(
        b.current_url()
            .await
            .unwrap()
            .query()
            .unwrap()
            .starts_with("cause=")
    );
    let intro = browser.text("p:nth-of-type(2)").await;
    assert!(
        intro.contains("1 unresolved rows whose cause is \"a check constraint rejected a value\""),
        "{intro}"
    );
    browser.screenshot("quarantine").await;
    let href = b
        .find(Locator::LinkText("Download the workbook"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    std::fs::write(ws.join("downloaded.xlsx"), browser.download(&href).await).unwrap();
    let (header, rows) = read_workbook(&ws.join("downloaded.xlsx"));
    assert!(header.contains(&"credit".to_string()), "{header:?}");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].contains(&"-5".to_string()), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_running_run_is_followed_live_until_it_ends() {
    // A service that takes its time and throttles: some fifteen seconds for 2,000 records.
    let emulator = ferry_emulator::start(
        ferry_emulator::Config {
            auth: false,
            limits: ferry_emulator::limits::Limits {
                window: Duration::from_secs(2),
                requests: 10,
                retry_after_fractions: true,
                ..Default::default()
            },
            latency: ferry_emulator::Latency {
                base: Duration::from_millis(20),
                per_record: Duration::from_millis(4),
                jitter: 0.0,
                ..ferry_emulator::Latency::none()
            },
            ..ferry_emulator::Config::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let ws = Workspace::new();
    let mut csv = String::from("accountnumber,name\n");
    for i in 0..2000 {
        csv.push_str(&format!("L-{i},Account {i}\n"));
    }
    ws.write("in/accounts.csv", &csv);
    let file = ws.write(
        "live.toml",
        format!(
            "name = \"live\"\n[connections.crm]\nurl = \"{}\"\nkind = \"dataverse\"\n[sources.a]\npath = \"in/accounts.csv\"\n\
             [target]\nconnection = \"crm\"\ntable = \"accounts\"\nmode = \"upsert\"\nkey = \"accountnumber\"\n\
             batch_size = 25\nworkers = 2\n",
            emulator.url()
        ),
    );
    let state = ws.join(".ferry").display().to_string();
    let server = serve(&["--state-dir", &state]);
    let mut run = ferry_command()
        .args(["run", &file.display().to_string(), "--quiet"])
        .spawn()
        .unwrap();
    let browser = Browser::start("live_run").await;
    let b = &browser.client;
    // The overview shows it running; its run link leads to its live page.
    browser
        .wait_for("the run on the overview", async || {
            b.goto(&format!("{}/", server.url)).await.ok()?;
            let row = browser.text("table tbody tr:first-child").await;
            row.contains("Running").then_some(())
        })
        .await;
    b.find(Locator::Css("table tbody tr:first-child td:nth-child(3) a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for("the run page", async || {
            b.current_url()
                .await
                .ok()
                .filter(|u| u.path().starts_with("/runs/live/"))
        })
        .await;
    // A mark on the page: it survives the live updates, and goes with the reload at the end.
    b.execute("window.ferryMark = 1", vec![]).await.unwrap();
    let batches = |text: String| text.replace(',', "").parse::<u64>().unwrap_or(0);
    // No batch recorded yet: no figures yet.
    let first = match b.find(Locator::Css("#batches")).await {
        Ok(e) => batches(e.text().await.unwrap()),
        Err(_) => 0,
    };
    browser
        .wait_for("the figures to grow without a reload", async || {
            let now = b
                .find(Locator::Css("#batches"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let marked = b
                .execute("return window.ferryMark === 1", vec![])
                .await
                .ok()?;
            (batches(now) > first && marked == serde_json::json!(true)).then_some(())
        })
        .await;
    browser.screenshot("running").await;
    assert!(run.wait().unwrap().success(), "the run completes");
    // Once it ended, the page reloads itself (the mark is gone) and shows the run as it ended.
    browser
        .wait_for("the reload after the run ended", async || {
            let marked = b
                .execute("return window.ferryMark === 1", vec![])
                .await
                .ok()?;
            let status = b
                .find(Locator::Css("#run table tbody tr td"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (marked == serde_json::json!(false) && status == "Completed").then_some(())
        })
        .await;
    publish(&browser.screenshot("ended").await, "dashboard-run.png");
    let log = ws.join(".ferry/log");
    let (_, sums) = read_delta(
        &log,
        "SELECT count(*), sum(rows_written), sum(throttled), sum(retries) FROM t",
    )
    .await;
    let mut shown = Vec::new();
    for css in ["#batches", "#written", "#throttled", "#retries"] {
        shown.push(browser.text(css).await.replace(',', ""));
    }
    assert_eq!(shown[1], "2000");
    assert_eq!(shown, sums[0], "the page's figures are the log's");
    assert_ne!(sums[0][2], "0", "the service throttled the run: {sums:?}");
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_and_dropbox_pages_show_schedules_fires_and_dropped_files() {
    let ws = Workspace::new();
    // A job with a schedule, fired once by hand.
    ws.write("jobs/in/items.csv", "id,name\n1,a\n2,b\n");
    ws.write(
        "jobs/nightly.toml",
        "name = \"nightly\"\n[connections.db]\nurl = \"sqlite://out/nightly.db\"\n[sources.items]\npath = \"in/items.csv\"\n\
         [target]\nconnection = \"db\"\ntable = \"items\"\nmode = \"upsert\"\nkey = \"id\"\ncreate = true\n\
         [schedule]\ncron = \"0 2 * * *\"\ntimezone = \"Europe/Paris\"\n",
    );
    let jobs = ws.join("jobs").display().to_string();
    let (code, out) = ferry_output(&["jobs", &jobs, "run", "nightly"]);
    assert_eq!(code, 0, "{out}");
    // A dropbox with one file, migrated into the emulator.
    let emulator = ferry_tests::anonymous_emulator().await;
    ws.write(
        "drop/dropbox.toml",
        format!(
            "name = \"intake\"\n[connections.target]\nurl = \"{}\"\nkind = \"dataverse\"\n[dropbox]\nconnection = \"target\"\nstable_for = \"0s\"\n",
            emulator.url()
        ),
    );
    ws.write(
        "drop/inbox/accounts.csv",
        "accountnumber,name\nA-1,Contoso\nA-2,Fabrikam\n",
    );
    ws.write(
        "drop/inbox/delivery.json",
        "{ \"accounts.csv\": { \"key\": [\"accountnumber\"] } }",
    );
    let (code, out) = ferry_output(&["dropbox", "run", &ws.join("drop").display().to_string()]);
    assert_eq!(code, 0, "{out}");

    let state = ws.join("drop/.ferry").display().to_string();
    let server = serve(&["--state-dir", &state, "--jobs", &jobs]);
    let (status, home) = get(&format!("{}/", server.url)).await;
    assert_eq!(status, 200, "{home}");
    assert!(
        home.contains("href=\"/jobs\"") && home.contains("href=\"/dropbox\""),
        "{home}"
    );

    let (_, page) = get(&format!("{}/jobs", server.url)).await;
    let row = page
        .split("<tr")
        .find(|r| r.contains(">nightly<"))
        .unwrap_or_else(|| panic!("no nightly row: {page}"));
    assert!(
        row.contains("(Europe/Paris)") && row.contains("enabled"),
        "{row}"
    );
    // 02:00 in Paris: 01:00 UTC in winter, 00:00 in summer; three days in a row.
    let fires: Vec<&str> = row
        .split(" UTC")
        .filter_map(|f| f.get(f.len().checked_sub(16)?..))
        .collect();
    let fires = &fires[..fires.len().min(3)];
    assert_eq!(fires.len(), 3, "three next fires: {row}");
    for f in fires {
        assert!(
            f.ends_with(" 01:00") || f.ends_with(" 00:00"),
            "{f} in {row}"
        );
    }
    let day = |f: &str| chrono::NaiveDate::parse_from_str(&f[..10], "%Y-%m-%d").unwrap();
    assert_eq!(
        day(fires[1]) - day(fires[0]),
        chrono::TimeDelta::days(1),
        "{row}"
    );
    assert_eq!(
        day(fires[2]) - day(fires[1]),
        chrono::TimeDelta::days(1),
        "{row}"
    );
    assert!(row.contains("manual #1 Completed, 2 rows"), "{row}");

    let (_, page) = get(&format!("{}/dropbox", server.url)).await;
    let row = page
        .split("<tr")
        .find(|r| r.contains(">accounts.csv<"))
        .unwrap_or_else(|| panic!("no accounts.csv row: {page}"));
    assert!(row.contains(">done<"), "{row}");
    // Its run is the entity pipeline's, one click away.
    let (status, run) = get(&format!(
        "{}{}",
        server.url,
        link(row, "/runs/intake-accounts/")
    ))
    .await;
    assert_eq!(status, 200, "{run}");
    assert!(
        run.contains("Completed") && run.contains("<span id=\"written\">2</span>"),
        "{run}"
    );
    // The same pages in the browser, from the overview's links down to the file's run.
    let browser = Browser::start("jobs_and_dropbox").await;
    browser
        .client
        .goto(&format!("{}/", server.url))
        .await
        .unwrap();
    browser.click_link("Jobs").await;
    assert!(browser.text("tbody").await.contains("nightly"));
    browser.screenshot("jobs").await;
    browser
        .client
        .goto(&format!("{}/", server.url))
        .await
        .unwrap();
    browser.click_link("Dropbox").await;
    browser.screenshot("dropbox").await;
    let run_id = browser.text("tbody tr td:nth-child(8)").await;
    browser.click_link(&run_id).await;
    assert_eq!(browser.text("#written").await, "2");
    emulator.stop().await;
}
