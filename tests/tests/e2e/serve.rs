//! `ferry serve` over real HTTP: a run with rejected rows, seen from the overview down to the
//! failing batch, its quarantined rows and their workbook; values escaped; a token required off
//! loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use ferry_tests::{Workspace, ferry_command, ferry_output, read_workbook};

/// A running `ferry serve`, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Server {
    let mut child = ferry_command()
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    Server { child, url }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_is_followed_down_to_its_rows_and_their_workbook() {
    let ws = Workspace::new();
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

    let state = ws.join(".ferry").display().to_string();
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
