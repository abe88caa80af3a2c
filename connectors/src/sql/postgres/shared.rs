//! Snapshots shared by the processes of a spread run, so that every process reads a PostgreSQL
//! table at the leader's point in time, as the connections of one process do. The leader's
//! partitioned reads export their snapshots (noted here); it publishes them with the run, and a
//! process that joins adopts them before it plans: its reads import the leader's snapshot instead
//! of exporting their own. A snapshot can be imported while its exporting transaction is open, i.e.
//! while the leader runs; one that cannot be imported (another server of the same name, a leader
//! gone) is said in a warning and the process reads at its own point in time.
//!
//! ```text
//! leader:  extent_pg ─ export ─▶ noted("db:table" → id) ─▶ spread.json { snapshots }
//! worker:  spread.json ─▶ adopt(...) ─▶ extent_pg ─ SET TRANSACTION SNAPSHOT id ─▶ ranges import id
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::sql::db::DbConfig;
use crate::sql::ident::TableName;

/// Snapshots this process exported for its reads, by table.
static EXPORTED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Snapshots another process exported, for this process's reads of the same tables.
static ADOPTED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// The name a table's snapshot goes by among processes: its database and its table (the host
/// may be named differently on another machine).
pub(crate) fn key(db: &DbConfig, table: &TableName) -> String {
    format!(
        "{}:{}",
        db.url.path().trim_start_matches('/'),
        table.quoted()
    )
}

/// The snapshots this process's reads exported and still hold, to publish to the others.
pub fn exported() -> BTreeMap<String, String> {
    EXPORTED.lock().expect("snapshots").clone()
}

/// Reads of these tables import these snapshots (another process's) from now on.
pub fn adopt(snapshots: BTreeMap<String, String>) {
    *ADOPTED.lock().expect("snapshots") = snapshots;
}

/// The snapshot another process exported for `key`, if one was adopted.
pub(crate) fn adopted(key: &str) -> Option<String> {
    ADOPTED.lock().expect("snapshots").get(key).cloned()
}

/// This process exported `id` for `key`.
pub(crate) fn note(key: &str, id: &str) {
    EXPORTED
        .lock()
        .expect("snapshots")
        .insert(key.to_string(), id.to_string());
}

/// The snapshot `id` of `key` ended (its holder dropped): no longer to be published.
pub(crate) fn forget(key: &str, id: &str) {
    let mut exported = EXPORTED.lock().expect("snapshots");
    if exported.get(key).map(String::as_str) == Some(id) {
        exported.remove(key);
    }
}
