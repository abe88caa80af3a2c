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
    ENDPOINT.get_or_init(|| servers::endpoint_or_start("FERRY_TEST_S3", "S3 test server", start))
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
    servers::start_http_server(
        &["moto_server"],
        "moto_server not found: install moto's S3 server (pip install \"moto[server]\"), or set FERRY_TEST_S3=http://host:port",
        "ferry-test-s3-",
        |port, _| {
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        },
    )
}
