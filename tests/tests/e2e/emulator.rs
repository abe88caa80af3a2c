//! The Dataverse-like emulator, driven over real HTTP with a plain client: every status code and error
//! body, changesets, continue-on-error, paging, tokens, each limit's 429 and recovery, the faults.

use std::time::Duration;

use ferry_emulator::limits::Limits;
use ferry_emulator::{self as emulator, Config, Faults, Latency, Running};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn quiet() -> Config {
    Config {
        auth: false,
        limits: Limits::off(),
        latency: Latency::none(),
        ..Config::default()
    }
}

async fn start(config: Config) -> Running {
    emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn body(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn records_are_created_read_upserted_and_deleted_with_dataverse_answers() {
    let emu = start(quiet()).await;
    let (c, url) = (Client::new(), emu.url());

    let r = c
        .post(format!("{url}/accounts"))
        .json(&json!({"name": "Contoso", "accountnumber": "A-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let entity = r.headers()["odata-entityid"].to_str().unwrap().to_string();
    assert!(entity.starts_with(&format!("{url}/accounts(")), "{entity}");
    let (s, v) = body(c.get(&entity).send().await.unwrap()).await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("Contoso")));

    let (s, v) = body(
        c.post(format!("{url}/accounts"))
            .header("Prefer", "return=representation")
            .json(&json!({"name": "Fabrikam", "numberofemployees": 12}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        v["accountid"].as_str().is_some()
            && v["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("#accounts/$entity")
    );

    // Upsert by alternate key creates, then updates.
    let by_key = format!("{url}/accounts(accountnumber='A-2')");
    assert_eq!(
        c.patch(&by_key)
            .json(&json!({"name": "Adatum"}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.patch(&by_key)
            .json(&json!({"name": "Adatum Corp"}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let (_, v) = body(c.get(&by_key).send().await.unwrap()).await;
    assert_eq!(
        (v["name"].as_str(), v["accountnumber"].as_str()),
        (Some("Adatum Corp"), Some("A-2"))
    );

    // If-Match: * updates only; If-None-Match: * creates only.
    let (s, v) = body(
        c.patch(format!("{url}/accounts(accountnumber='NOPE')"))
            .header("If-Match", "*")
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "0x80040217"));
    let (s, v) = body(
        c.patch(&by_key)
            .header("If-None-Match", "*")
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, code(&v), message(&v)),
        (
            StatusCode::PRECONDITION_FAILED,
            "0x80040237",
            "A record with matching key values already exists."
        )
    );

    // Delete, then it is gone.
    assert_eq!(
        c.delete(&entity).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let (s, v) = body(c.get(&entity).send().await.unwrap()).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "0x80040217"));
    assert!(message(&v).starts_with("account With Id = "), "{v}");
    emu.stop().await;
}

#[tokio::test]
async fn invalid_records_get_dataverse_errors() {
    let emu = start(quiet()).await;
    let (c, url) = (Client::new(), emu.url());
    let post = |b: Value| c.post(format!("{url}/accounts")).json(&b).send();
    let (s, v) = body(post(json!({"accountnumber": "A-9"})).await.unwrap()).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "0x80040200"));
    assert!(message(&v).contains("required attribute 'name'"), "{v}");
    let (s, v) = body(
        post(json!({"name": "x", "accountnumber": "A-123456789012345678901"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "0x80044331"));
    assert!(message(&v).contains("The length of the 'accountnumber' attribute of the 'account' entity exceeded the maximum allowed length of '20'"), "{v}");
    let (s, v) = body(
        post(json!({"name": "x", "numberofemployees": "many"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "0x80060888"));
    assert!(message(&v).contains("Edm.Int32"), "{v}");
    let (s, v) = body(post(json!({"name": "x", "colour": "red"})).await.unwrap()).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "0x80060888"));
    assert!(
        message(&v).contains(
            "The property 'colour' does not exist on type 'Microsoft.Dynamics.CRM.account'"
        ),
        "{v}"
    );
    // Duplicate alternate key.
    assert_eq!(
        post(json!({"name": "a", "accountnumber": "DUP"}))
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let (s, v) = body(
        post(json!({"name": "b", "accountnumber": "DUP"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PRECONDITION_FAILED, "0x80040237")
    );
    // Lookups: by alternate key, and dangling.
    let (s, _) = body(
        c.post(format!("{url}/contacts"))
            .json(&json!({"lastname": "Lee", "parentcustomerid@odata.bind": "/accounts(accountnumber='DUP')"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = body(
        c.get(format!("{url}/contacts?$filter=lastname eq 'Lee'"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, account) = body(
        c.get(format!("{url}/accounts(accountnumber='DUP')"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        v["value"][0]["_parentcustomerid_value"],
        account["accountid"]
    );
    let (s, v) = body(
        c.post(format!("{url}/contacts"))
            .json(&json!({"lastname": "Kim", "parentcustomerid@odata.bind": format!("/accounts({})", uuid::Uuid::new_v4())}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "0x80040217"));
    emu.stop().await;
}

#[tokio::test]
async fn queries_filter_select_order_count_and_page() {
    let emu = start(quiet()).await;
    let (c, url) = (Client::new(), emu.url());
    for i in 0..25 {
        let b = json!({"name": format!("n{i:02}"), "accountnumber": format!("A-{i}"), "numberofemployees": i, "creditonhold": i % 2 == 0});
        assert!(
            c.post(format!("{url}/accounts"))
                .json(&b)
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    let (s, v) = body(
        c.get(format!("{url}/accounts?$select=name&$filter=numberofemployees gt 10 and creditonhold eq false&$orderby=name desc&$count=true&$top=3"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["n23", "n21", "n19"]);
    assert_eq!(v["@odata.count"], 3);
    assert!(
        v["value"][0].get("numberofemployees").is_none(),
        "$select keeps only the selected columns"
    );

    let mut next = Some(format!("{url}/accounts?$select=accountnumber"));
    let mut seen = 0;
    let mut pages = 0;
    while let Some(link) = next {
        let (_, v) = body(
            c.get(&link)
                .header("Prefer", "odata.maxpagesize=10")
                .send()
                .await
                .unwrap(),
        )
        .await;
        seen += v["value"].as_array().unwrap().len();
        pages += 1;
        next = v["@odata.nextLink"].as_str().map(String::from);
    }
    assert_eq!((seen, pages), (25, 3));
    assert_eq!(
        stats(&c, &emu).await["total"]["records_read"],
        3 + 25,
        "the records GETs returned are counted (and costed): the three of $top, the 25 paged"
    );
    let (s, v) = body(
        c.get(format!("{url}/accounts?$filter=name like 'x'"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "0x80060888"));

    let metadata = c
        .get(format!("{url}/$metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metadata.contains(
            "<EntitySet Name=\"accounts\" EntityType=\"Microsoft.Dynamics.CRM.account\"/>"
        )
    );
    assert!(metadata.contains("<Key><PropertyRef Name=\"accountid\"/></Key>"));
    assert!(metadata.contains("PropertyPath=\"accountnumber\""));
    assert!(metadata.contains(
        "<Property Name=\"name\" Type=\"Edm.String\" MaxLength=\"160\" Nullable=\"false\"/>"
    ));
    assert!(
        metadata.contains("<NavigationProperty Name=\"parentcustomerid\" Type=\"mscrm.account\"/>")
    );
    emu.stop().await;
}

/// A multipart/mixed $batch body: each entry a changeset (Vec of requests) or a single request.
fn batch_body(items: &[Vec<(&str, &str, Value)>], singles: bool) -> (String, String) {
    let b = "batch_test";
    let mut out = String::new();
    let mut id = 0;
    for item in items {
        if singles {
            for (method, path, json) in item {
                out.push_str(&format!("--{b}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{method} /api/data/v9.2/{path} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{json}\r\n"));
            }
            continue;
        }
        let cs = format!("changeset_{id}");
        out.push_str(&format!(
            "--{b}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"
        ));
        for (method, path, json) in item {
            id += 1;
            out.push_str(&format!("--{cs}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {id}\r\n\r\n{method} /api/data/v9.2/{path} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{json}\r\n"));
        }
        out.push_str(&format!("--{cs}--\r\n"));
    }
    out.push_str(&format!("--{b}--\r\n"));
    (format!("multipart/mixed; boundary={b}"), out)
}

async fn count(c: &Client, url: &str, set: &str) -> usize {
    let (_, v) = body(
        c.get(format!("{url}/{set}?$count=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    v["@odata.count"].as_u64().unwrap() as usize
}

#[tokio::test]
async fn batches_roll_back_changesets_continue_on_error_and_resolve_content_ids() {
    let emu = start(quiet()).await;
    let (c, url) = (Client::new(), emu.url());
    // A changeset with a bad request: nothing of it lands, the batch stops with 400.
    let (ct, b) = batch_body(
        &[vec![
            ("POST", "accounts", json!({"name": "one"})),
            ("POST", "accounts", json!({"name": "two"})),
            ("POST", "accounts", json!({"accountnumber": "no name"})),
        ]],
        false,
    );
    let r = c
        .post(format!("{url}/$batch"))
        .header("Content-Type", ct)
        .body(b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("HTTP/1.1 400 Bad Request") && text.contains("0x80040200"),
        "{text}"
    );
    assert_eq!(
        text.matches("HTTP/1.1").count(),
        1,
        "a failed changeset answers once: {text}"
    );
    assert_eq!(count(&c, &url, "accounts").await, 0);

    // Content-ID: the contact's lookup points at the account created just before, in one changeset.
    let (ct, b) = batch_body(
        &[vec![
            (
                "POST",
                "accounts",
                json!({"name": "parent", "accountnumber": "P-1"}),
            ),
            (
                "POST",
                "contacts",
                json!({"lastname": "child", "parentcustomerid@odata.bind": "$1"}),
            ),
        ]],
        false,
    );
    let r = c
        .post(format!("{url}/$batch"))
        .header("Content-Type", ct)
        .body(b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 2, "{text}");
    let (_, parent) = body(
        c.get(format!("{url}/accounts(accountnumber='P-1')"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, kids) = body(c.get(format!("{url}/contacts")).send().await.unwrap()).await;
    assert_eq!(
        kids["value"][0]["_parentcustomerid_value"],
        parent["accountid"]
    );

    // Without continue-on-error the batch stops at the first failure; with it, it goes on.
    let singles = vec![vec![
        ("POST", "accounts", json!({"name": "s1"})),
        ("POST", "accounts", json!({"bad": 1})),
        ("POST", "accounts", json!({"name": "s3"})),
    ]];
    let (ct, b) = batch_body(&singles, true);
    let r = c
        .post(format!("{url}/$batch"))
        .header("Content-Type", &ct)
        .body(b.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&c, &url, "accounts").await, 2);
    let r = c
        .post(format!("{url}/$batch"))
        .header("Content-Type", ct)
        .header("Prefer", "odata.continue-on-error")
        .body(b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert_eq!(
        (
            text.matches("204 No Content").count(),
            text.matches("400 Bad Request").count()
        ),
        (2, 1),
        "{text}"
    );
    assert_eq!(count(&c, &url, "accounts").await, 4);

    // More than 1000 requests are refused whole.
    let many: Vec<(&str, &str, Value)> = (0..1001)
        .map(|_| ("POST", "accounts", json!({"name": "m"})))
        .collect();
    let (ct, b) = batch_body(&[many], true);
    let (s, v) = body(
        c.post(format!("{url}/$batch"))
            .header("Content-Type", ct)
            .body(b)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&v).contains("exceeds the limit of 1000"), "{v}");
    assert_eq!(count(&c, &url, "accounts").await, 4);
    emu.stop().await;
}

async fn token(c: &Client, emu: &Running, client: &str) -> String {
    let (s, v) = body(
        c.post(emu.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", "s3cret"),
                ("scope", "x/.default"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn tokens_are_required_and_expire() {
    let emu = start(Config {
        auth: true,
        token_lifetime: Duration::from_millis(800),
        ..quiet()
    })
    .await;
    let (c, url) = (Client::new(), emu.url());
    let (s, v) = body(c.get(format!("{url}/accounts")).send().await.unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let t = token(&c, &emu, "app-1").await;
    assert_eq!(
        c.get(format!("{url}/accounts"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (s, v) = body(
        c.get(format!("{url}/accounts"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(message(&v).contains("expired"), "{v}");
    let fresh = token(&c, &emu, "app-1").await;
    assert_eq!(
        c.get(format!("{url}/accounts"))
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (s, v) = body(
        c.post(emu.token_url())
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    emu.stop().await;
}

#[tokio::test]
async fn each_limit_answers_429_with_retry_after_and_recovers() {
    // Requests in the window, per client.
    let emu = start(Config {
        auth: true,
        limits: Limits {
            window: Duration::from_secs(2),
            requests: 5,
            ..Limits::default()
        },
        ..quiet()
    })
    .await;
    let (c, url) = (Client::new(), emu.url());
    let (a, b) = (token(&c, &emu, "a").await, token(&c, &emu, "b").await);
    for _ in 0..5 {
        let r = c
            .get(format!("{url}/accounts"))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-ms-dop-hint"], "8");
    }
    let r = c
        .get(format!("{url}/accounts"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    // HTTP's delta-seconds, as Dataverse sends them, even for a window scaled to 2 s.
    let retry = r.headers()["retry-after"].to_str().unwrap().to_string();
    let (s, v) = body(r).await;
    assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "0x80072322"));
    assert!(
        matches!(retry.parse::<u64>(), Ok(1..=2)),
        "whole seconds, within the 2 s window: {retry}"
    );
    assert_eq!(
        c.get(format!("{url}/accounts"))
            .bearer_auth(&b)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_secs(retry.parse().unwrap()) + Duration::from_millis(300))
        .await;
    assert_eq!(
        c.get(format!("{url}/accounts"))
            .bearer_auth(&a)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    emu.stop().await;

    // Concurrent requests.
    let emu = start(Config {
        limits: Limits {
            concurrency: 2,
            ..Limits::default()
        },
        latency: Latency {
            base: Duration::from_millis(300),
            per_record: Duration::ZERO,
            jitter: 0.0,
            ..Latency::none()
        },
        ..quiet()
    })
    .await;
    let url = emu.url();
    let calls = (0..5).map(|_| {
        let (c, url) = (c.clone(), url.clone());
        async move { body(c.get(format!("{url}/accounts")).send().await.unwrap()).await }
    });
    let results = futures::future::join_all(calls).await;
    let throttled: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(throttled.len(), 3, "{results:?}");
    assert!(throttled.iter().all(|v| code(v) == "0x80072326"));
    assert_eq!(
        c.get(format!("{url}/accounts"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    emu.stop().await;

    // Combined execution time.
    let emu = start(Config {
        limits: Limits {
            window: Duration::from_secs(2),
            retry_after_fractions: true,
            execution: Duration::from_millis(300),
            ..Limits::default()
        },
        latency: Latency {
            base: Duration::from_millis(200),
            per_record: Duration::ZERO,
            jitter: 0.0,
            ..Latency::none()
        },
        ..quiet()
    })
    .await;
    let url = emu.url();
    for _ in 0..2 {
        assert_eq!(
            c.get(format!("{url}/accounts"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let r = c.get(format!("{url}/accounts")).send().await.unwrap();
    let retry: f64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (s, v) = body(r).await;
    assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "0x80072321"));
    tokio::time::sleep(Duration::from_secs_f64(retry) + Duration::from_millis(300)).await;
    assert_eq!(
        c.get(format!("{url}/accounts"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    emu.stop().await;
}

async fn stats(c: &Client, emu: &Running) -> Value {
    body(
        c.get(format!("http://{}/_emulator/stats", emu.addr))
            .send()
            .await
            .unwrap(),
    )
    .await
    .1
}

/// An emulator where every request meets `faults`, and the outcome of one create on it: the status,
/// or None when no complete answer came back.
async fn post_through(faults: Faults) -> (Running, Option<StatusCode>) {
    let emu = start(Config { faults, ..quiet() }).await;
    let r = Client::new()
        .post(format!("{}/accounts", emu.url()))
        .json(&json!({"name": "x"}))
        .send()
        .await;
    let status = match r {
        Ok(r) => {
            let status = r.status();
            r.text().await.ok().map(|_| status)
        }
        Err(_) => None,
    };
    (emu, status)
}

#[tokio::test]
async fn faults_are_injected_and_counted() {
    let c = Client::new();
    let (emu, status) = post_through(Faults {
        errors: 1.0,
        ..Faults::default()
    })
    .await;
    assert!(status.is_some_and(|s| s.is_server_error()), "{status:?}");
    assert_eq!(stats(&c, &emu).await["records"]["accounts"], 0);
    emu.stop().await;

    let (emu, status) = post_through(Faults {
        dropped: 1.0,
        ..Faults::default()
    })
    .await;
    assert_eq!(status, None, "the connection is dropped");
    assert_eq!(stats(&c, &emu).await["records"]["accounts"], 0);
    emu.stop().await;

    // Applied, but the response is lost.
    let (emu, status) = post_through(Faults {
        lost: 1.0,
        ..Faults::default()
    })
    .await;
    assert_eq!(status, None, "the response is lost");
    let s = stats(&c, &emu).await;
    assert_eq!(s["records"]["accounts"], 1, "{s}");
    assert_eq!(s["clients"]["anonymous"]["faults"], 1, "{s}");
    assert_eq!(s["clients"]["anonymous"]["records_written"], 1, "{s}");
    // Reset clears records and counters.
    assert_eq!(
        c.post(format!("http://{}/_emulator/reset", emu.addr))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let s = stats(&c, &emu).await;
    assert_eq!(
        (
            s["records"]["accounts"].as_u64(),
            s["total"]["requests"].as_u64()
        ),
        (Some(0), Some(0)),
        "{s}"
    );
    emu.stop().await;

    // Slow answers arrive late.
    let emu = start(Config {
        faults: Faults {
            slow: 1.0,
            slow_by: Duration::from_millis(400),
            ..Faults::default()
        },
        ..quiet()
    })
    .await;
    assert_eq!(
        c.get(format!("{}/accounts", emu.url()))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(stats(&c, &emu).await["clients"]["anonymous"]["faults"], 1);
    emu.stop().await;
}

#[tokio::test]
async fn records_can_outlive_the_emulator_in_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crm.sqlite");
    let c = Client::new();
    let config = || Config {
        data_file: Some(file.clone()),
        ..quiet()
    };
    let emu = start(config()).await;
    let r = c
        .patch(format!("{}/accounts(accountnumber='K-1')", emu.url()))
        .json(&json!({"name": "kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    emu.stop().await;
    let emu = start(config()).await;
    let (s, v) = body(
        c.get(format!("{}/accounts(accountnumber='K-1')", emu.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("kept")));
    c.post(format!("http://{}/_emulator/reset", emu.addr))
        .send()
        .await
        .unwrap();
    emu.stop().await;
    let emu = start(config()).await;
    assert_eq!(stats(&c, &emu).await["records"]["accounts"], 0);
    emu.stop().await;
}

/// Each class of malformed or hostile request gets an answer (a 400 in Dataverse's error shape where
/// it is malformed), and the emulator goes on serving everyone: no panic, no poisoned lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_answered_and_the_service_keeps_serving() {
    let emu = start(quiet()).await;
    let (c, url) = (Client::new(), emu.url());
    // Numbers and nulls mixed, enough rows for the sort to notice a comparison that is no order.
    for i in 0..64 {
        let mut record = json!({"name": format!("n{i}"), "accountnumber": format!("A-{i}")});
        if i % 3 != 0 {
            record["numberofemployees"] = json!(i % 7);
        }
        let r = c
            .post(format!("{url}/accounts"))
            .json(&record)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let still_serving = async || {
        let r = c.get(format!("{url}/accounts?$top=1")).send().await;
        assert_eq!(
            r.map(|r| r.status()).ok(),
            Some(StatusCode::OK),
            "the service stopped serving"
        );
    };

    // The largest page a client can ask for, from a skip token: no overflow.
    let r = c
        .get(format!("{url}/accounts?$skiptoken=1"))
        .header("prefer", "odata.maxpagesize=18446744073709551615")
        .send()
        .await
        .unwrap();
    let (s, v) = body(r).await;
    assert_eq!(
        (s, v["value"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(63))
    );
    still_serving().await;

    // Ordering over a column that is empty in some records.
    let r = c
        .get(format!("{url}/accounts?$orderby=numberofemployees desc"))
        .send()
        .await
        .unwrap();
    let (s, v) = body(r).await;
    assert_eq!(s, StatusCode::OK);
    let ordered: Vec<Option<i64>> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["numberofemployees"].as_i64())
        .collect();
    let mut want = ordered.clone();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(ordered, want, "numbers descending, then the empty ones");
    still_serving().await;

    // Thousands of nested parentheses, and of comparisons in a row (as many as a URL can carry).
    let deep = format!("{}name eq 'x'{}", "(".repeat(5_000), ")".repeat(5_000));
    let long = vec!["name eq 'x'"; 2_000].join(" and ");
    for filter in [deep, long] {
        let r = c
            .get(format!("{url}/accounts"))
            .query(&[("$filter", filter)])
            .send()
            .await
            .unwrap();
        let (s, v) = body(r).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "0x80060888"),
            "{v}"
        );
        still_serving().await;
    }
    emu.stop().await;

    // A limit of no requests at all throttles every request, and keeps answering.
    let emu = start(Config {
        limits: Limits {
            requests: 0,
            ..Limits::default()
        },
        ..quiet()
    })
    .await;
    for _ in 0..2 {
        let r = c
            .get(format!("{}/accounts", emu.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    emu.stop().await;
}

/// A client that gives up on a request (a timeout, a dropped connection) does not keep its
/// concurrency slot: with a limit of one request at once, the next request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_gives_its_concurrency_slot_back() {
    let emu = start(Config {
        limits: Limits {
            concurrency: 1,
            ..Limits::default()
        },
        latency: Latency {
            base: Duration::from_millis(1500),
            per_record: Duration::ZERO,
            jitter: 0.0,
            ..Latency::none()
        },
        ..quiet()
    })
    .await;
    let url = format!("{}/accounts", emu.url());
    let impatient = Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(impatient.get(&url).send().await.is_err(), "it gave up");
    // The server notices the closed connection and drops the request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = Client::new().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    emu.stop().await;
}

/// However many tokens a client asks for, the emulator keeps a bounded number: a client's newest
/// hundred live ones (the oldest revoked), and no expired ones.
#[tokio::test]
async fn tokens_asked_for_without_end_stay_bounded() {
    let emu = start(Config {
        auth: true,
        ..quiet()
    })
    .await;
    let (c, url) = (Client::new(), emu.url());
    let mut issued = Vec::new();
    for _ in 0..150 {
        issued.push(token(&c, &emu, "greedy").await);
    }
    let other = token(&c, &emu, "modest").await;
    let live = stats(&c, &emu).await["tokens"].as_u64().unwrap();
    assert_eq!(live, 101, "100 for the greedy client, 1 for the other");
    let status = |t: String| {
        let c = c.clone();
        let url = url.clone();
        async move {
            c.get(format!("{url}/accounts"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(issued[0].clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(issued[149].clone()).await, StatusCode::OK);
    assert_eq!(status(other).await, StatusCode::OK);
    emu.stop().await;
}

/// A client that announces a huge body and sends none of it, without a token, is refused at once:
/// the emulator authenticates and admits a request before it reads the body, and never buffers more
/// than a request may hold.
#[tokio::test]
async fn a_huge_body_is_refused_before_it_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emu = start(Config::default()).await;
    let answer = async |head: String| {
        let mut tcp = tokio::net::TcpStream::connect(emu.addr).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(b"{\"name\":").await.unwrap();
        // The answer comes without the body: waiting for it would hang here (the limit is only a
        // guard against hanging forever, not a measure).
        let mut got = Vec::new();
        while !got.ends_with(b"}") {
            let mut buf = vec![0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf))
                .await
                .expect("an answer before the body")
                .unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).to_string()
    };
    let unauthenticated = answer(
        "POST /api/data/v9.2/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 268435456\r\n\r\n".into(),
    )
    .await;
    assert!(
        unauthenticated.starts_with("HTTP/1.1 401"),
        "{unauthenticated}"
    );
    let token = ferry_tests::odata_token(&emu.token_url()).await;
    let too_big = answer(format!(
        "POST /api/data/v9.2/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 268435456\r\n\r\n"
    ))
    .await;
    assert!(too_big.starts_with("HTTP/1.1 413"), "{too_big}");
    assert!(
        too_big.contains(r#"{"error":{"code":"0x8"#),
        "Dataverse's error shape: {too_big}"
    );
    // The server keeps serving everyone else.
    let ok = Client::new()
        .get(format!("{}/accounts", emu.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    emu.stop().await;
}

/// Tokens asked for by ever new client ids keep the emulator's memory bounded: its stats keep the
/// first clients by name and count the rest together, and live tokens are capped overall.
#[tokio::test]
async fn ever_new_clients_keep_the_stats_and_tokens_bounded() {
    let emu = start(Config {
        auth: true,
        ..quiet()
    })
    .await;
    let c = Client::new();
    for i in 0..1_100 {
        token(&c, &emu, &format!("client-{i}")).await;
    }
    let s = stats(&c, &emu).await;
    let clients = s["clients"].as_object().unwrap();
    assert!(
        clients.len() <= 1_001,
        "{} clients in the stats",
        clients.len()
    );
    assert!(
        clients.contains_key("client-0"),
        "the first clients keep their names"
    );
    assert_eq!(
        clients["(other clients)"]["tokens_issued"].as_u64(),
        Some(100),
        "the rest are counted together"
    );
    assert_eq!(
        s["total"]["tokens_issued"].as_u64(),
        Some(1_100),
        "{}",
        s["total"]
    );
    emu.stop().await;
}
