//! A throwaway S3 for the tests: moto's server (`pip install "moto[server]"`), started once per test
//! process on a free loopback port, stopped when the test process is gone. It answers S3's
//! conditional writes (`If-None-Match: *`, `If-Match`), which Delta's commits and Ferry's run lease
//! rely on, as S3 does since 2024.
//!
//! `FERRY_TEST_S3=http://host:port` points the tests at a running S3-compatible server instead.

use std::sync::OnceLock;

use crate::servers;

/// The endpoint of this test process's S3; started on first use.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        std::env::var("FERRY_TEST_S3")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| start().unwrap_or_else(|e| panic!("S3 test server: {e}")))
    })
}

/// The environment a Ferry process needs to use this S3 for s3:// locations.
pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT", endpoint().to_string()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
}

/// Creates the bucket `name` (a fresh one per test keeps tests apart).
pub async fn create_bucket(name: &str) {
    let response = reqwest::Client::new()
        .put(format!("{}/{name}", endpoint()))
        .send()
        .await
        .expect("the S3 server answers");
    assert!(
        response.status().is_success(),
        "creating the bucket {name}: {}",
        response.status()
    );
}

fn start() -> Result<String, String> {
    let Some(moto) = servers::find_binary(&["moto_server"], &[]) else {
        return Err("moto_server not found: install moto's S3 server (pip install \"moto[server]\"), or set FERRY_TEST_S3=http://host:port".into());
    };
    let folder = servers::server_folder("ferry-test-s3-", None)?;
    let port = servers::free_port();
    let args: Vec<String> = vec![
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    servers::start_watched(
        None,
        &moto,
        &args,
        &folder,
        servers::Watch::this_process("INT"),
    )?;
    servers::wait_until(&folder, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok(format!("http://127.0.0.1:{port}"))
}
