//! A throwaway Azure Blob Storage for the tests: Microsoft's Azurite (`npm install -g azurite`),
//! started once per test process on a free loopback port, in a temporary folder that a watcher
//! deletes when the test process is gone. Azurite implements Blob Storage's conditional headers
//! (If-None-Match: *, If-Match), which Delta's commits and Ferry's run lease are built on.
//!
//! `FERRY_TEST_AZURITE=http://host:port` points the tests at a running Azurite instead.

use std::sync::OnceLock;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::servers;

/// Azurite's well-known account and key (the same in every Azurite).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The Blob endpoint of this test process's Azurite; started on first use.
pub fn azurite() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        servers::endpoint_or_start("FERRY_TEST_AZURITE", "Azurite test server", start)
    })
}

/// The environment a Ferry process needs to use this Azurite for az:// locations.
pub fn env() -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        ("AZURITE_BLOB_STORAGE_URL", azurite().to_string()),
    ]
}

/// Creates the container `name` (a fresh one per test keeps tests apart).
pub async fn create_container(name: &str) {
    put(name, Some("restype:container"), Vec::new(), None).await;
}

/// Uploads `body` as the blob `path` ("container/folder/file.csv"), as any Azure client does.
pub async fn upload(path: &str, body: impl Into<Vec<u8>>) {
    put(path, None, body.into(), Some("BlockBlob")).await;
}

/// A PUT signed with the account's Shared Key: `resource` is "container[/blob]", `query` the one
/// "name:value" of the canonical resource.
async fn put(resource: &str, query: Option<&str>, body: Vec<u8>, blob_type: Option<&str>) {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let length = if body.is_empty() {
        String::new()
    } else {
        body.len().to_string()
    };
    let mut headers = vec![("x-ms-date", date), ("x-ms-version", version.to_string())];
    if let Some(t) = blob_type {
        headers.insert(0, ("x-ms-blob-type", t.to_string()));
    }
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical_query = query.map(|q| format!("\n{q}")).unwrap_or_default();
    let to_sign = format!(
        "PUT\n\n\n{length}\n\n\n\n\n\n\n\n\n{canonical_headers}/{ACCOUNT}/{ACCOUNT}/{resource}{canonical_query}"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .expect("the well-known key");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
    let url_query = query
        .map(|q| format!("?{}", q.replace(':', "=")))
        .unwrap_or_default();
    let mut request = reqwest::Client::new()
        .put(format!("{}/{ACCOUNT}/{resource}{url_query}", azurite()))
        .header("Content-Length", body.len().to_string())
        .header("Authorization", format!("SharedKey {ACCOUNT}:{signature}"));
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = request.body(body).send().await.expect("Azurite answers");
    let status = response.status();
    assert!(
        status.is_success(),
        "PUT {resource}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}

/// HMAC (RFC 2104) over SHA-256: what Blob Storage's Shared Key signatures are.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn start() -> Result<String, String> {
    servers::start_http_server(
        &["azurite-blob"],
        "azurite-blob not found: install Microsoft's Azure Storage emulator (npm install -g azurite), or set FERRY_TEST_AZURITE=http://host:port",
        "ferry-test-azurite-",
        |port, folder| {
            vec![
                "--blobHost".into(),
                "127.0.0.1".into(),
                "--blobPort".into(),
                port.to_string(),
                "--location".into(),
                folder.display().to_string(),
                "--skipApiVersionCheck".into(),
                "--silent".into(),
            ]
        },
    )
}
