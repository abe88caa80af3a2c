//! Alerts when a scheduled run fails, times out or ends in Partial Success: a JSON summary POSTed
//! to a webhook, or a command run with the summary in FERRY_* variables. Each is bounded in time
//! (10 s a try), a webhook is tried three times, and the scheduler never waits for either. The
//! summary is the journal's row: no connection, URL or secret is in it.

use std::time::Duration;

use super::journal::Fire;
use crate::spec::Alert;

const TRY_TIMEOUT: Duration = Duration::from_secs(10);
const WEBHOOK_TRIES: u32 = 3;

/// The summary an alert carries.
pub fn payload(fire: &Fire) -> serde_json::Value {
    serde_json::json!({
        "job": fire.job,
        "status": fire.status,
        "trigger": fire.trigger,
        "scheduled": fire.scheduled.to_rfc3339(),
        "started": fire.started.map(|t| t.to_rfc3339()),
        "ended": fire.ended.to_rfc3339(),
        "attempt": fire.attempt,
        "exit_code": fire.exit_code,
        "reason": fire.reason,
        "log": fire.log,
    })
}

/// Sends one alert; failures are printed, never raised.
pub async fn send(alert: Alert, fire: Fire) {
    let result = match &alert {
        Alert::Webhook(url) => webhook(url, &payload(&fire)).await,
        Alert::Command(command) => run_command(command, &fire).await,
    };
    if let Err(e) = result {
        eprintln!(
            "error: the alert for {} ({}) was not delivered: {e}",
            fire.job, fire.status
        );
    }
}

async fn webhook(url: &str, body: &serde_json::Value) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(TRY_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_TRIES {
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("the webhook answered {}", r.status()),
            Err(e) => last = format!("the webhook did not answer: {}", e.without_url()),
        }
        if attempt < WEBHOOK_TRIES {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
    }
    Err(last)
}

async fn run_command(command: &str, fire: &Fire) -> Result<(), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("FERRY_JOB", &fire.job)
        .env("FERRY_STATUS", &fire.status)
        .env("FERRY_TRIGGER", &fire.trigger)
        .env("FERRY_SCHEDULED", fire.scheduled.to_rfc3339())
        .env("FERRY_ATTEMPT", fire.attempt.to_string())
        .env("FERRY_REASON", fire.reason.as_deref().unwrap_or(""))
        .env("FERRY_LOG", fire.log.as_deref().unwrap_or(""))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `sh -c`: {e}"))?;
    match tokio::time::timeout(TRY_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("the command exited with {status}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the command ran longer than {}s and was stopped",
            TRY_TIMEOUT.as_secs()
        )),
    }
}
