//! Throughput of the Dataverse-like emulator with its limits off: single-record requests per second
//! and records per second in `$batch`, so that it is known never to be the bottleneck when Ferry's
//! OData sink is measured against it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use ferry_emulator::limits::Limits;
use ferry_emulator::{self as emulator, Config, Latency};

pub struct Figures {
    pub single_per_second: f64,
    pub batch_records_per_second: f64,
}

pub async fn measure(seconds: u64, concurrency: usize, batch_size: usize) -> Result<Figures> {
    let config = Config {
        auth: false,
        limits: Limits::off(),
        latency: Latency::none(),
        ..Config::default()
    };
    let emu = emulator::start(config, "127.0.0.1:0".parse()?).await?;
    let url = emu.url();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    let single = run_for(Duration::from_secs(seconds), concurrency, {
        let (client, url) = (client.clone(), url.clone());
        move |n| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let body = format!("{{\"name\":\"bench {n}\",\"accountnumber\":\"S-{n}\"}}");
                let r = client
                    .post(format!("{url}/accounts"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 204, "status {}", r.status());
                Ok(1)
            }
        }
    })
    .await?;

    let batches = run_for(Duration::from_secs(seconds), concurrency.min(8), {
        let (client, url) = (client.clone(), url.clone());
        move |n| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let mut body = String::new();
                for i in 0..batch_size {
                    body.push_str(&format!(
                        "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPATCH /api/data/v9.2/accounts(accountnumber='B-{n}-{i}') HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"name\":\"batch {i}\"}}\r\n"
                    ));
                }
                body.push_str("--b--\r\n");
                let r = client
                    .post(format!("{url}/$batch"))
                    .header("content-type", "multipart/mixed; boundary=b")
                    .header("prefer", "odata.continue-on-error")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 200, "status {}", r.status());
                r.bytes().await?;
                Ok(batch_size as u64)
            }
        }
    })
    .await?;
    emu.stop().await;
    Ok(Figures {
        single_per_second: single,
        batch_records_per_second: batches,
    })
}

/// Runs `concurrency` loops of `call` for `length`; returns units per second.
async fn run_for<F, Fut>(length: Duration, concurrency: usize, call: F) -> Result<f64>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64>> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (call, done, next) = (call.clone(), done.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < length {
                let n = next.fetch_add(1, Ordering::Relaxed);
                done.fetch_add(call(n).await?, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
