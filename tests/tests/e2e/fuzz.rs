//! Fuzzing the parsers that read what users and services send (`ferry_tests::fuzz`): pipeline
//! files, `$batch` answers as Ferry's OData client reads them, the emulator's URLs, queries,
//! `$batch` requests and whole requests against its store, and Excel workbooks. Each must answer
//! every input with a result or an error, never a panic. CI runs a smoke of each; the long run is
//! `FERRY_FUZZ_CASES=200000 cargo test --release --workspace --test e2e fuzz` (README, Reliability).

use std::collections::HashMap;
use std::path::Path;

use ferry::spec::Pipeline;
use ferry_connectors::http::multipart::parse_responses;
use ferry_emulator::api::{self, Request};
use ferry_emulator::model::Model;
use ferry_emulator::store::Store;
use ferry_tests::fuzz::{fuzz, fuzz_with};
use ferry_tests::repo_root;

/// Every pipeline file the project ships, as seeds.
fn pipeline_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for dir in ["pipelines", "benches/pipelines"] {
        for entry in std::fs::read_dir(repo_root().join(dir)).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "toml") {
                seeds.push(std::fs::read(entry.path()).unwrap());
            }
        }
    }
    seeds
}

#[test]
fn fuzz_pipeline_files() {
    let seeds = pipeline_seeds();
    assert!(seeds.len() >= 5, "{} pipeline seeds", seeds.len());
    fuzz("pipeline", &seeds, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = Pipeline::parse(Path::new("/fuzz/pipelines/p.toml"), &text);
    });
}

const BATCH_ANSWER: &str = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n--changesetresponse_2--\r\n--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80072322\",\"message\":\"Number of requests exceeded the limit\"}}\r\n--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n{\"error\":{\"code\":\"0x80040200\",\"message\":\"required\"}}\r\n--batchresponse_1--\r\n";

#[test]
fn fuzz_batch_answers_as_the_odata_client_reads_them() {
    let seeds = vec![BATCH_ANSWER.as_bytes().to_vec()];
    fuzz("batch-answer", &seeds, |input| {
        let text = String::from_utf8_lossy(input);
        let parts = parse_responses(&text, "multipart/mixed; boundary=batchresponse_1");
        for p in &parts {
            if let Some(secs) = p.retry_after {
                // A part's Retry-After must always be a pause the client can take.
                let _ = std::time::Duration::from_secs_f64(secs);
            }
        }
    });
}

const BATCH_REQUEST: &str = "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPATCH /api/data/v9.2/accounts(accountnumber='A-1') HTTP/1.1\r\nContent-Type: application/json\r\nIf-None-Match: *\r\n\r\n{\"name\":\"a\",\"numberofemployees\":3}\r\n--changeset_1\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\nPOST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"emailaddress1\":\"x@y\",\"parentcustomerid_account@odata.bind\":\"$1\"}\r\n--changeset_1--\r\n--batch_1\r\nContent-Type: application/http\r\n\r\nGET /api/data/v9.2/accounts?$filter=numberofemployees gt 2&$top=5 HTTP/1.1\r\n\r\n\r\n--batch_1--\r\n";

const QUERIES: &[&str] = &[
    "$filter=name eq 'x' and (numberofemployees gt 5 or contains(name,'a'))&$orderby=name desc,accountnumber&$top=10&$select=name,accountnumber",
    "$skiptoken=3&$count=true&$filter=not (numberofemployees le 2) and accountnumber ne null",
    "$filter=startswith(name,'A') or endswith(name,'z')&$orderby=numberofemployees asc",
];

const PATHS: &[&str] = &[
    "accounts(accountnumber='A-1')",
    "accounts(00000000-0000-0000-0000-000000000001)",
    "contacts(emailaddress1='x@y')/parentcustomerid_account/$ref",
    "$metadata",
    "accounts",
];

#[test]
fn fuzz_the_emulators_urls_and_batch_requests() {
    let queries: Vec<Vec<u8>> = QUERIES.iter().map(|q| q.as_bytes().to_vec()).collect();
    fuzz("emulator-query", &queries, |input| {
        let _ = ferry_emulator::url::parse_query(&String::from_utf8_lossy(input));
    });
    let paths: Vec<Vec<u8>> = PATHS.iter().map(|p| p.as_bytes().to_vec()).collect();
    fuzz("emulator-path", &paths, |input| {
        let _ = ferry_emulator::url::parse_resource(&String::from_utf8_lossy(input));
    });
    let batch = vec![BATCH_REQUEST.as_bytes().to_vec()];
    fuzz("emulator-batch", &batch, |input| {
        let _ = ferry_emulator::batch::parse(
            input,
            "multipart/mixed; boundary=batch_1",
            "/api/data/v9.2",
        );
    });
}

#[test]
fn fuzz_whole_requests_against_the_emulators_store() {
    // Seeds are "METHOD path?query\nbody": split at the first space, '?' and newline.
    let seeds: Vec<Vec<u8>> = [
        "PATCH accounts(accountnumber='A-1')\n{\"name\":\"a\",\"numberofemployees\":3}",
        "POST accounts\n{\"accountnumber\":\"A-2\",\"name\":\"b\",\"revenue\":1.5}",
        "GET accounts?$filter=numberofemployees gt 2&$orderby=name&$top=3\n",
        "DELETE accounts(accountnumber='A-1')\n",
        "POST contacts\n{\"emailaddress1\":\"x@y\",\"parentcustomerid_account@odata.bind\":\"accounts(accountnumber='A-2')\"}",
        "GET accounts?$skiptoken=18446744073709551615\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let store = std::sync::Mutex::new(Store::new(Model::builtin()));
    fuzz("emulator-request", &seeds, |input| {
        let text = String::from_utf8_lossy(input);
        let (head, body) = text.split_once('\n').unwrap_or((&text, ""));
        let (method, target) = head.split_once(' ').unwrap_or(("GET", head));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let request = Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        };
        let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
        let _ = api::execute(
            &mut store,
            &request,
            "http://127.0.0.1/api/data/v9.2",
            &HashMap::new(),
            &mut Vec::new(),
            50,
        );
    });
}

#[test]
fn fuzz_excel_workbooks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.xlsx");
    ferry_tests::write_workbook(
        &path,
        &["id".to_string(), "name".to_string(), "amount".to_string()],
        &[
            vec!["1".into(), "a".into(), "1.5".into()],
            vec!["2".into(), "b".into(), "2".into()],
        ],
        &[0, 2],
    );
    let seeds = vec![std::fs::read(&path).unwrap()];
    // A workbook is a zip: fewer cases, each reads a whole archive.
    fuzz("xlsx", &seeds, |input| {
        let _ = ferry_connectors::files::xlsx::read_sheet("fuzz.xlsx", input.to_vec(), None);
    });
}

/// CSV files as a source, read whole through DataFusion's reader (schema inference included).
#[test]
fn fuzz_csv_sources() {
    let ws = ferry_tests::Workspace::new();
    let pipeline = ws.pipeline(
        "p.toml",
        r#"name = "csv"
[sources.src]
path = "in/src.csv"
[target]
path = "out/o.parquet"
mode = "truncate"
"#,
    );
    let seeds = vec![
        b"id,name,amount,when\n1,a,1.5,2026-01-01\n2,\"b, \"\"quoted\"\"\",-2,2026-02-03 04:05:06\n3,,,\n"
            .to_vec(),
        b"a;b\n1;2\n".to_vec(),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Each case plans and reads a file: fewer cases in the smoke run.
    fuzz_with("csv", &seeds, 300, |input| {
        ws.write("in/src.csv", input);
        runtime.block_on(async {
            if let Ok(planned) = ferry::plan::plan(&pipeline).await {
                let _ = planned.result().clone().collect().await;
            }
        });
    });
}

/// Found by `fuzz_excel_workbooks` (seed 20261201): a damaged workbook on which calamine indexes
/// past the end of a list. As a source or a corrected quarantine workbook it must be an error that
/// names the file, never a crash of the run.
#[test]
fn a_workbook_that_crashes_the_excel_reader_is_an_error_naming_it() {
    let bytes = std::fs::read(
        repo_root().join("tests/fixtures/fuzz/xlsx-calamine-index-out-of-bounds.xlsx"),
    )
    .unwrap();
    let err = ferry_connectors::files::xlsx::read_sheet("in/book.xlsx", bytes, None)
        .expect_err("a damaged workbook");
    assert!(
        err.message.starts_with("in/book.xlsx") && err.message.contains("damaged"),
        "{err}"
    );
}
