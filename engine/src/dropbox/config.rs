//! The two configurations of a dropbox: `dropbox.toml` (the folder's own: the target connection and
//! how deliveries are handled), and the JSON a business user drops beside the workbooks (file name ->
//! options, the seed's shape). A JSON that does not parse or names an option that does not exist is
//! refused whole, with the line and column named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `DIR/dropbox.toml`.
#[derive(Debug, Clone)]
pub struct Dropbox {
    pub dir: PathBuf,
    pub name: String,
    /// Where bookkeeping, staging and the generated pipelines go (default `DIR/.ferry`).
    pub state_dir: PathBuf,
    /// The target connection's name and its keys, as written (`${VAR}` unexpanded; in an
    /// environment, the catalogue's connection with its `${vars.NAME}` url filled).
    pub connection: (String, toml::Table),
    pub options: Options,
    /// The environment whose catalogue holds the configuration: its entity pipelines name the
    /// catalogue's connection and keep their runs in its state dir.
    pub environment: Option<crate::environment::Environment>,
}

/// `[dropbox]` of `dropbox.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The connection every entity is written to.
    pub connection: String,
    /// After each entity, its refused rows as `outbox/<entity>.quarantine.xlsx`.
    #[serde(default = "yes")]
    pub download_quarantine: bool,
    /// A file is taken once its size and time have not changed for this long.
    #[serde(default = "two_seconds")]
    pub stable_for: String,
    /// Create a missing target table (SQL targets) from the staged columns. Off by default: an
    /// entity the target does not have is refused before anything is written (a misspelt file
    /// name must not become a new table).
    #[serde(default)]
    pub create: bool,
    /// The write mode of an entity without one in the delivery's JSON: upsert with a `key`,
    /// insert without.
    pub mode: Option<String>,
    pub batch_size: Option<usize>,
    pub workers: Option<usize>,
}

fn yes() -> bool {
    true
}

fn two_seconds() -> String {
    "2s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDropbox {
    name: String,
    state_dir: Option<String>,
    /// In an environment: the folder users drop into (its inbox/, archive/, outbox/), from the
    /// project folder; `${vars.NAME}` allowed. Default `dropbox/<env>/<name>`.
    folder: Option<String>,
    #[serde(default)]
    connections: BTreeMap<String, toml::Table>,
    dropbox: Options,
}

impl RawDropbox {
    /// The file's text, with its shape and `stable_for` checked; errors name the file and line.
    fn parse(file: &Path, text: &str) -> Result<RawDropbox, String> {
        let raw: RawDropbox = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(":{}", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_default();
            format!("{}{at}: {}", file.display(), e.message())
        })?;
        if crate::spec::parse_duration(&raw.dropbox.stable_for).is_none() {
            return Err(format!(
                "{}: stable_for = \"{}\" is not a duration (\"2s\", \"1m\")",
                file.display(),
                raw.dropbox.stable_for
            ));
        }
        Ok(raw)
    }
}

impl Dropbox {
    pub fn load(dir: &Path) -> Result<Dropbox, String> {
        let file = dir.join("dropbox.toml");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "cannot read {}: {e} (`ferry dropbox init {}` writes one)",
                file.display(),
                dir.display()
            )
        })?;
        let raw = RawDropbox::parse(&file, &text)?;
        if raw.folder.is_some() {
            return Err(format!(
                "{}: folder is for a dropbox in an environment's catalogue; this one's folder is {}",
                file.display(),
                dir.display()
            ));
        }
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let Some(keys) = raw.connections.get(&raw.dropbox.connection) else {
            return Err(format!(
                "{}: [dropbox] connection = \"{}\" is not one of its [connections]",
                file.display(),
                raw.dropbox.connection
            ));
        };
        let state_dir = match &raw.state_dir {
            Some(s) => dir.join(s),
            None => dir.join(".ferry"),
        };
        Ok(Dropbox {
            name: raw.name,
            state_dir,
            connection: (raw.dropbox.connection.clone(), keys.clone()),
            options: raw.dropbox,
            dir,
            environment: None,
        })
    }

    /// The dropbox configuration `name` of an environment's catalogue
    /// (`environments/<env>/dropbox/<name>.toml`): its connection is the catalogue's.
    pub fn load_in(env: &crate::environment::Environment, name: &str) -> Result<Dropbox, String> {
        use crate::environment::AssetKind;
        let file = env.asset_file(AssetKind::Dropbox, name);
        let text = env.asset_text(AssetKind::Dropbox, name)?.ok_or_else(|| {
            format!(
                "environment \"{}\" has no dropbox {name} ({}; it has: {})",
                env.name,
                file.display(),
                env.assets(AssetKind::Dropbox).join(", ")
            )
        })?;
        let raw = RawDropbox::parse(&file, &text)?;
        if !raw.connections.is_empty() || raw.state_dir.is_some() {
            return Err(format!(
                "{}: in an environment, the connection is an asset of its own and the state dir the environment's: \
                 remove [connections] and state_dir, and name the connection ([dropbox] connection = \"NAME\" \
                 for {})",
                file.display(),
                env.dir().join("connections").join("NAME.toml").display()
            ));
        }
        let connection = &raw.dropbox.connection;
        let connection_text = env
            .asset_text(AssetKind::Connections, connection)?
            .ok_or_else(|| {
                format!(
                    "{}: environment \"{}\" has no connection \"{connection}\"",
                    file.display(),
                    env.name
                )
            })?;
        let mut keys: toml::Table = connection_text.parse().map_err(|e: toml::de::Error| {
            format!(
                "{}: {}",
                env.asset_file(AssetKind::Connections, connection).display(),
                e.message()
            )
        })?;
        let vars_only = |text: &str| {
            ferry_connectors::secret::interpolate_with(text, |reference| {
                match env.reference(reference, false) {
                    Some(found) => found,
                    None => Ok(format!("${{{reference}}}")),
                }
            })
            .map_err(|e| format!("{}: {e:?}", file.display()))
        };
        if let Some(url) = keys.get("url").and_then(|u| u.as_str()).map(str::to_string) {
            keys.insert("url".into(), vars_only(&url)?.into());
        }
        let folder = match &raw.folder {
            Some(folder) => env.project.join(vars_only(folder)?),
            None => env.project.join("dropbox").join(&env.name).join(name),
        };
        Ok(Dropbox {
            name: raw.name,
            state_dir: env.state_dir.join("dropboxes").join(name),
            connection: (connection.clone(), keys),
            options: raw.dropbox,
            dir: folder,
            environment: Some(env.clone()),
        })
    }

    pub fn stable_for(&self) -> Duration {
        crate::spec::parse_duration(&self.options.stable_for).unwrap_or(Duration::from_secs(2))
    }

    pub fn inbox(&self) -> PathBuf {
        self.dir.join("inbox")
    }
    pub fn archive(&self) -> PathBuf {
        self.dir.join("archive")
    }
    pub fn rejected(&self) -> PathBuf {
        self.dir.join("rejected")
    }
    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }
    /// Ferry's own files: staging, manifest, generated pipelines.
    pub fn work(&self) -> PathBuf {
        self.state_dir.join("dropbox")
    }
}

/// One file's options in a delivery's JSON.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// The table or entity set (default: the file's name without its extension).
    pub target_entity: Option<String>,
    /// Restart the entity from the beginning with this file, even if an earlier file of it is
    /// not done.
    #[serde(default)]
    pub overwrite: bool,
    /// All of the entity or none.
    #[serde(default)]
    pub atomic: bool,
    /// F&O: the legal entity (company) the rows belong to.
    pub legal_entity: Option<String>,
    /// The worksheet (default: the first).
    pub sheet: Option<String>,
    /// The alternate key: the entity is upserted on it.
    pub key: Option<Vec<String>>,
    /// insert | upsert | truncate | sync.
    pub mode: Option<String>,
    /// Lower goes first.
    pub order: Option<i64>,
    /// Entities that must land first.
    #[serde(default)]
    pub after: Vec<String>,
    /// Column renames: workbook header -> target column.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

/// A delivery's JSON: file name -> options.
pub type Delivery = BTreeMap<String, FileOptions>;

/// Reads a delivery's JSON; the error names the line and column and what is wrong.
pub fn read_delivery(file: &Path) -> Result<Delivery, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot be read: {e}", file.display()))?;
    serde_json::from_str::<Delivery>(&text).map_err(|e| {
        format!(
            "{}:{}:{}: {e}\nthe options of a file are: target_entity, overwrite, atomic, legal_entity, sheet, key, mode, order, after, rename",
            file.display(),
            e.line(),
            e.column()
        )
    })
}

/// The `dropbox.toml` that `ferry dropbox init` writes.
pub fn template(url: &str) -> String {
    // An OData service (Dataverse, or the emulator) signs in with client credentials.
    let credentials = match url.split_once("/api/data/") {
        Some((root, _)) if url.starts_with("http") => format!(
            "kind = \"dataverse\"                     # or \"fno\", \"odata\"\n\
             auth = \"client_credentials\"\n\
             token_url = \"{root}/oauth2/v2.0/token\"\n\
             client_id = \"${{CRM_CLIENT_ID}}\"         # secrets by reference only\n\
             client_secret = \"${{CRM_CLIENT_SECRET}}\"\n"
        ),
        _ => "# password = \"${TARGET_PASSWORD}\"     # secrets by reference only\n".to_string(),
    };
    format!(
        r#"# A dropbox: business users drop workbooks (xlsx, csv, parquet) into inbox/, with an optional
# JSON file of options per workbook; `ferry dropbox run .` stages, migrates (in order), archives
# them, and writes the rows the target refused into outbox/<entity>.quarantine.xlsx.
name = "dropbox"

[connections.target]
url = "{url}"
{credentials}
[dropbox]
connection = "target"
download_quarantine = true              # refused rows handed back as a workbook
stable_for = "2s"                       # a file still being copied is not taken
# create = true                         # SQL targets: create a missing table (off: an entity the
#                                       # target does not have is refused before writing)
# mode = "upsert"                       # default: upsert with a key, insert without
# batch_size = 1000
# workers = 4

# A delivery's JSON (any *.json in inbox/), the options of each workbook:
# {{
#   "accounts.xlsx": {{ "target_entity": "account", "key": ["accountnumber"], "order": 1 }},
#   "contacts.xlsx": {{ "target_entity": "contact", "after": ["account"], "overwrite": true,
#                      "rename": {{ "Account No": "accountnumber" }} }}
# }}
"#
    )
}
