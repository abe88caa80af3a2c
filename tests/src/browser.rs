//! A real headless browser for the dashboard's tests: Debian's Chromium driven through its
//! ChromeDriver (WebDriver, by the fantoccini crate) on loopback, and a `ferry serve` for it to
//! load. When either program is missing the test fails saying what to install; screenshots go under
//! the test's output folder (`target/tmp/browser/<test>/`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const CHROMEDRIVER: &[&str] = &["/usr/bin/chromedriver"];

fn installed(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .into_iter()
        .chain(candidates.iter().map(PathBuf::from))
        .find(|p| p.exists())
}

/// A headless Chromium session; its driver is stopped when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium; `test` names the screenshots' folder.
    pub async fn start(test: &str) -> Browser {
        let missing = "the browser tests need Debian's Chromium and its driver: \
                       apt-get install chromium chromium-driver (or set CHROMIUM and CHROMEDRIVER)";
        let chromium = installed("CHROMIUM", CHROMIUM).unwrap_or_else(|| panic!("{missing}"));
        let chromedriver =
            installed("CHROMEDRIVER", CHROMEDRIVER).unwrap_or_else(|| panic!("{missing}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));
        // It says "ChromeDriver was started successfully" once it listens.
        let out = BufReader::new(driver.stdout.take().expect("stdout"));
        for line in out.lines() {
            if line.is_ok_and(|l| l.contains("started successfully")) {
                break;
            }
        }
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                // No sandbox as root; no background traffic: this machine has no internet.
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Chromium does not start under {}: {e}",
                    chromedriver.display()
                )
            });
        // target/<profile>/deps/<test binary> -> target/tmp/browser/<test>
        let shots = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
            .unwrap_or_else(std::env::temp_dir)
            .join("tmp/browser")
            .join(test);
        std::fs::create_dir_all(&shots).expect("the screenshots' folder");
        Browser {
            client,
            driver,
            shots,
            _profile: profile,
        }
    }

    /// The text of the first element `css` finds.
    pub async fn text(&self, css: &str) -> String {
        let found = self.client.find(Locator::Css(css)).await;
        let url = self.client.current_url().await;
        found
            .unwrap_or_else(|e| panic!("no {css} on {url:?}: {e}"))
            .text()
            .await
            .expect("its text")
    }

    /// Clicks the link whose text is `text`, and waits for the page it leads to.
    pub async fn click_link(&self, text: &str) {
        let before = self.client.current_url().await.expect("a page");
        self.client
            .find(Locator::LinkText(text))
            .await
            .unwrap_or_else(|e| panic!("no link \"{text}\" on {before}: {e}"))
            .click()
            .await
            .expect("a click");
        self.wait_for(&format!("a page other than {before}"), async || {
            self.client
                .current_url()
                .await
                .ok()
                .filter(|u| *u != before)
        })
        .await;
    }

    /// Runs `probe` until it gives something (every 100 ms, for 30 s at most).
    pub async fn wait_for<T>(&self, what: &str, probe: impl AsyncFn() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            assert!(Instant::now() < deadline, "waited 30 s for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves the page as `<name>.png` in the test's folder and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let file = self.shots.join(format!("{name}.png"));
        std::fs::write(&file, png).expect("the screenshot saved");
        file
    }

    /// Fetches `href` from within the page (the browser's own request, with its cookies and
    /// origin) and returns the bytes: a download, read back.
    pub async fn download(&self, href: &str) -> Vec<u8> {
        let script = "const [href, done] = arguments; \
                      fetch(href).then(r => r.arrayBuffer()).then(b => done(Array.from(new Uint8Array(b))));";
        let value = self
            .client
            .execute_async(script, vec![serde_json::json!(href)])
            .await
            .expect("the download");
        value
            .as_array()
            .expect("the bytes")
            .iter()
            .map(|b| b.as_u64().expect("a byte") as u8)
            .collect()
    }
}

/// A running `ferry serve`, stopped when dropped.
pub struct Dashboard {
    child: Child,
    pub url: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ferry serve ARGS --port 0` and reads the address it prints.
pub fn serve(args: &[&str]) -> Dashboard {
    let mut child = crate::ferry_command()
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its first line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    Dashboard { child, url }
}

/// Copies a screenshot into the repository (docs/) when FERRY_UPDATE_SCREENSHOTS is set: the README
/// shows one taken by the test.
pub fn publish(shot: &Path, name: &str) {
    if std::env::var_os("FERRY_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(shot, crate::repo_root().join("docs").join(name)).expect("copied");
    }
}
