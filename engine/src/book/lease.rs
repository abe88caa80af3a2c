//! The run lock when the bookkeeping lives on object storage, where there is no flock: a lease
//! object `<state_dir>/locks/<pipeline>.lease` that names its holder. It is taken with a put that
//! succeeds only if the object does not exist (or, to take over, only if it is still the version
//! that was read), renewed every third of its time to live the same way, and released at the end.
//!
//! A holder that dies stops renewing: once the store's own clock says the lease has not been
//! renewed for its time to live, another process takes it over. Ages are measured on the store's
//! clock (the lease's last-modified against a probe written just now), never by comparing the
//! clocks of two machines. A holder that cannot renew in time, or finds its lease taken, is told
//! through [`Lease::lost`]: the run stops writing and fails, so two holders never write at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_connectors::ConnectorError;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// How long a lease lives without renewal, unless `FERRY_LEASE_SECONDS` says otherwise.
const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// What the lease object says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    since: DateTime<Utc>,
    ttl_seconds: u64,
    /// Counts renewals, so that every renewal writes other bytes (S3's ETag is the bytes' MD5:
    /// an unchanged body would keep the ETag a taker read, and its conditional put would pass).
    renewals: u64,
    released: bool,
}

/// A lease this process holds; renewed in the background until released or dropped.
#[derive(Debug)]
pub struct Lease {
    stop: Option<oneshot::Sender<()>>,
    lost: watch::Receiver<Option<String>>,
    renewing: Option<tokio::task::JoinHandle<()>>,
}

impl Lease {
    /// Takes the lease at `path` in `store` for this process, or says who holds it.
    pub async fn take(store: Arc<dyn ObjectStore>, path: Path, what: &str) -> Result<Lease> {
        Lease::take_for(store, path, what, ttl()).await
    }

    async fn take_for(
        store: Arc<dyn ObjectStore>,
        path: Path,
        what: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let mine = Holder {
            pid: std::process::id(),
            host: super::lock::hostname(),
            since: Utc::now(),
            ttl_seconds: ttl.as_secs(),
            renewals: 0,
            released: false,
        };
        let cannot = |e: object_store::Error| {
            ConnectorError::retryable(format!("cannot take the lease {path}: {e}"))
                .with_hint("check that the object store is reachable and writable")
        };
        let mut version = None;
        for _ in 0..5 {
            match put(&store, &path, &mine, PutMode::Create).await {
                Ok(v) => {
                    version = Some(v);
                    break;
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(cannot(e)),
            }
            let current = match store.get(&path).await {
                Ok(current) => current,
                // Released and deleted between our two requests: try to create it again.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(cannot(e)),
            };
            let meta = current.meta.clone();
            let held: Option<Holder> = current
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let age = server_now(&store, &path).await.map_err(cannot)? - meta.last_modified;
            let expired = match &held {
                None => true,
                Some(h) => h.released || age.num_seconds() > h.ttl_seconds as i64,
            };
            if !expired {
                let h = held.expect("a live lease has a holder");
                return Err(ConnectorError::retryable(format!(
                    "{what} is already running (process {} on {}, since {}; its lease was renewed {}s ago)",
                    h.pid,
                    h.host,
                    h.since.to_rfc3339(),
                    age.num_seconds().max(0)
                ))
                .with_hint(format!(
                    "wait for it to finish, or stop that process; if it died, its lease ends {}s after its last renewal",
                    h.ttl_seconds
                )));
            }
            let taken_from = UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            };
            match put(&store, &path, &mine, PutMode::Update(taken_from)).await {
                Ok(v) => {
                    if let Some(h) = held.filter(|h| !h.released) {
                        tracing::warn!(
                            "took over the lease of {what} from process {} on {}, not renewed for {}s",
                            h.pid,
                            h.host,
                            age.num_seconds()
                        );
                    }
                    version = Some(v);
                    break;
                }
                // Someone else renewed or took it meanwhile: look again.
                Err(object_store::Error::Precondition { .. }) => continue,
                Err(e) => return Err(cannot(e)),
            }
        }
        let Some(version) = version else {
            return Err(ConnectorError::retryable(format!(
                "{what}: the lease {path} changed hands five times while Ferry tried to take it"
            ))
            .with_hint("another process is starting the same pipeline; try again in a moment"));
        };
        let (stop, stopped) = oneshot::channel();
        let (lost_tx, lost) = watch::channel(None);
        let renewing = tokio::spawn(renew(store, path, mine, version, ttl, stopped, lost_tx));
        Ok(Lease {
            stop: Some(stop),
            lost,
            renewing: Some(renewing),
        })
    }

    /// Resolves when the lease is lost (taken by another process, or not renewed in time), with why.
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The renewing task is gone without a word: treat it as lost, never as held.
            Err(_) => "the lease's renewal ended".to_string(),
        }
    }

    /// Releases the lease, so the next run need not wait for it to expire.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(renewing) = self.renewing.take() {
            let _ = renewing.await;
        }
    }
}

/// The renewing tasks of leases dropped without [`Lease::release`], releasing them on their own:
/// [`settle`] waits for them before the process exits.
static LETTING_GO: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

impl Drop for Lease {
    /// Without [`Lease::release`] (a command that returned early with an error), the renewing task
    /// releases it on its own, and [`settle`] lets it finish before the process exits; a process
    /// that dies leaves the lease to expire.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(renewing) = self.renewing.take() {
            LETTING_GO.lock().expect("leases letting go").push(renewing);
        }
    }
}

/// Waits (a few seconds at most) for the leases dropped without `release` to be released, so that
/// the next command need not wait for them to expire. Called by `main` before it returns.
pub async fn settle() {
    let tasks = std::mem::take(&mut *LETTING_GO.lock().expect("leases letting go"));
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
}

/// The lease's time to live: `FERRY_LEASE_SECONDS` (at least 3), or a minute.
fn ttl() -> Duration {
    std::env::var("FERRY_LEASE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(DEFAULT_TTL, |s| Duration::from_secs(s.max(3)))
}

async fn put(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    holder: &Holder,
    mode: PutMode,
) -> object_store::Result<UpdateVersion> {
    let body = serde_json::to_vec(holder).expect("a holder serialises");
    let put = store
        .put_opts(path, PutPayload::from(body), PutOptions::from(mode))
        .await?;
    Ok(UpdateVersion::from(put))
}

/// The store's clock now: the last-modified time of a probe object written beside the lease.
async fn server_now(
    store: &Arc<dyn ObjectStore>,
    lease: &Path,
) -> object_store::Result<DateTime<Utc>> {
    let probe = Path::from(format!("{lease}.clock"));
    store.put(&probe, PutPayload::from_static(b"now")).await?;
    Ok(store.head(&probe).await?.last_modified)
}

/// Renews every third of the time to live until stopped, then releases; reports a lost lease.
async fn renew(
    store: Arc<dyn ObjectStore>,
    path: Path,
    mut mine: Holder,
    mut version: UpdateVersion,
    ttl: Duration,
    mut stopped: oneshot::Receiver<()>,
    lost: watch::Sender<Option<String>>,
) {
    let mut renewed_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tokio::time::sleep(ttl / 3) => {}
        }
        mine.renewals += 1;
        match put(&store, &path, &mine, PutMode::Update(version.clone())).await {
            Ok(v) => {
                version = v;
                renewed_at = tokio::time::Instant::now();
            }
            Err(object_store::Error::Precondition { .. }) => {
                let _ = lost.send(Some(format!(
                    "the lease {path} was taken by another process after this one could not renew it in time"
                )));
                return;
            }
            Err(e) if renewed_at.elapsed() + ttl / 3 >= ttl => {
                let _ = lost.send(Some(format!(
                    "the lease {path} could not be renewed within its {}s: {e}",
                    ttl.as_secs()
                )));
                return;
            }
            Err(e) => tracing::warn!("could not renew the lease {path}, trying again: {e}"),
        }
    }
    mine.released = true;
    if let Err(e) = put(&store, &path, &mine, PutMode::Update(version)).await {
        tracing::warn!("could not release the lease {path} (it expires on its own): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn store() -> (Arc<dyn ObjectStore>, Path) {
        (Arc::new(InMemory::new()), Path::from("books/locks/p.lease"))
    }

    #[tokio::test]
    async fn a_held_lease_is_refused_naming_its_holder_and_taken_at_once_when_released() {
        let (store, path) = store();
        let held = Lease::take(store.clone(), path.clone(), "pipeline \"p\"")
            .await
            .unwrap();
        let refused = Lease::take(store.clone(), path.clone(), "pipeline \"p\"")
            .await
            .unwrap_err();
        assert!(
            refused.message.starts_with(&format!(
                "pipeline \"p\" is already running (process {} on",
                std::process::id()
            )),
            "{refused}"
        );
        held.release().await;
        Lease::take(store, path, "pipeline \"p\"").await.unwrap();
    }

    /// A lease dropped without `release` (a command that failed early) is released once `settle`
    /// returns: the next taker gets it at once.
    #[tokio::test]
    async fn a_dropped_lease_is_released_by_settle() {
        let (store, path) = store();
        let lease = Lease::take(store.clone(), path.clone(), "p").await.unwrap();
        drop(lease);
        settle().await;
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        let now: Holder = serde_json::from_slice(&body).unwrap();
        assert!(now.released, "{now:?}");
        Lease::take(store, path, "p").await.unwrap();
    }

    /// A holder that died (its lease says 0 s to live and was written over a second ago) loses it.
    #[tokio::test]
    async fn an_expired_lease_is_taken_over() {
        let (store, path) = store();
        let dead = Holder {
            pid: 1,
            host: "gone".into(),
            since: Utc::now(),
            ttl_seconds: 0,
            renewals: 7,
            released: false,
        };
        put(&store, &path, &dead, PutMode::Create).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let lease = Lease::take(store.clone(), path.clone(), "p").await.unwrap();
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        let now: Holder = serde_json::from_slice(&body).unwrap();
        assert_eq!(now.pid, std::process::id());
        drop(lease);
    }

    /// Another process overwrote the lease (it took it over while this one stalled): the next
    /// renewal fails its condition and the holder is told it lost the lease.
    #[tokio::test]
    async fn a_holder_whose_lease_was_taken_is_told_at_its_next_renewal() {
        let (store, path) = store();
        let lease = Lease::take_for(store.clone(), path.clone(), "p", Duration::from_secs(3))
            .await
            .unwrap();
        let other = Holder {
            pid: 2,
            host: "elsewhere".into(),
            since: Utc::now(),
            ttl_seconds: 3,
            renewals: 0,
            released: false,
        };
        put(&store, &path, &other, PutMode::Overwrite)
            .await
            .unwrap();
        let why = tokio::time::timeout(Duration::from_secs(5), lease.lost())
            .await
            .expect("told within a renewal");
        assert!(why.contains("was taken by another process"), "{why}");
        // And it does not release what is no longer its own.
        lease.release().await;
        let body = store.get(&path).await.unwrap().bytes().await.unwrap();
        let now: Holder = serde_json::from_slice(&body).unwrap();
        assert_eq!((now.pid, now.released), (2, false));
    }
}
