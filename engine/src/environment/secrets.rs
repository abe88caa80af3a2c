//! Where an environment's `${secret.NAME}` come from: a TOML file outside the project (`NAME =
//! "value"`), or a command such as a vault CLI (`{name}` in its arguments is the secret's name; its
//! output is the value). Values are read when a pipeline is loaded, held in memory only, and never
//! written anywhere: the catalogue holds references, so promoting it carries no secret.
//! [`literal_secrets`] refuses a catalogue file that holds a secret's value instead of a reference.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ferry_connectors::secret::Unresolved;

#[derive(Debug, Clone)]
pub enum Secrets {
    /// The environment names no source: `${secret.NAME}` is an error that says how to add one.
    None,
    File(PathBuf),
    Command(Vec<String>),
}

/// Keys whose value is a secret wherever they appear in a catalogue file.
const SECRET_KEYS: [&str; 6] = [
    "password",
    "token",
    "client_secret",
    "secret",
    "api_key",
    "private_key",
];

impl Secrets {
    pub(super) fn from_settings(
        root: &Path,
        env: &str,
        file: Option<String>,
        command: Option<Vec<String>>,
    ) -> Result<Secrets, String> {
        match (file, command) {
            (Some(_), Some(_)) => Err("has both secrets_file and secrets_command: keep one".into()),
            (None, Some(command)) if command.is_empty() => {
                Err("secrets_command is empty: [\"vault\", \"kv\", \"get\", \"-field={name}\", \"secret/ferry\"]".into())
            }
            (None, Some(command)) => Ok(Secrets::Command(command)),
            (Some(file), None) => {
                let path = match file.strip_prefix("~/") {
                    Some(rest) => std::env::home_dir()
                        .ok_or("secrets_file starts with ~/ and there is no home folder")?
                        .join(rest),
                    None => root.join(&file),
                };
                let path = std::path::absolute(&path).map_err(|e| e.to_string())?;
                let root = std::path::absolute(root).map_err(|e| e.to_string())?;
                if normalized(&path).starts_with(normalized(&root)) {
                    return Err(format!(
                        "secrets_file {} is inside the project, whose files are committed and \
                         promoted: keep it outside (e.g. ~/.config/ferry/{env}.secrets.toml)",
                        path.display()
                    ));
                }
                Ok(Secrets::File(path))
            }
            (None, None) => Ok(Secrets::None),
        }
    }

    /// The value of secret `name` of environment `env`; read once per process.
    pub fn resolve(&self, env: &str, name: &str) -> Result<String, Unresolved> {
        static CACHE: OnceLock<Mutex<HashMap<(String, String), String>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = (env.to_string(), name.to_string());
        if let Some(value) = cache.lock().expect("secrets cache").get(&key) {
            return Ok(value.clone());
        }
        let value = self.read(env, name)?;
        cache
            .lock()
            .expect("secrets cache")
            .insert(key, value.clone());
        Ok(value)
    }

    fn read(&self, env: &str, name: &str) -> Result<String, Unresolved> {
        let failed = |why: String, hint: String| Unresolved::Failed { why, hint };
        match self {
            Secrets::None => Err(failed(
                format!(
                    "environment \"{env}\" has no secrets_file or secrets_command to read secret {name} from"
                ),
                format!(
                    "add secrets_file = \"~/.config/ferry/{env}.secrets.toml\" under [environments.{env}] in {}",
                    super::FILE
                ),
            )),
            Secrets::File(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    failed(
                        format!(
                            "cannot read the secrets file of \"{env}\", {}: {e}",
                            file.display()
                        ),
                        format!("create it with {name} = \"...\" (outside the project; chmod 600)"),
                    )
                })?;
                let table: toml::Table = toml::from_str(&text).map_err(|e| {
                    // The message may quote the file's line: say where, not what.
                    let line = e.span().map(|s| text[..s.start].lines().count().max(1));
                    failed(
                        format!(
                            "the secrets file of \"{env}\", {}, is not TOML{}",
                            file.display(),
                            line.map(|l| format!(" (line {l})")).unwrap_or_default()
                        ),
                        "each line is NAME = \"value\"".into(),
                    )
                })?;
                match table.get(name) {
                    Some(toml::Value::String(value)) => Ok(value.clone()),
                    Some(_) => Err(failed(
                        format!("secret {name} in {} is not a string", file.display()),
                        format!("{name} = \"...\""),
                    )),
                    None => Err(failed(
                        format!(
                            "the secrets file of \"{env}\", {}, has no {name}",
                            file.display()
                        ),
                        format!("add {name} = \"...\" to it"),
                    )),
                }
            }
            Secrets::Command(command) => {
                let args: Vec<String> = command.iter().map(|a| a.replace("{name}", name)).collect();
                let shown = command.join(" ");
                let output = std::process::Command::new(&args[0])
                    .args(&args[1..])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(|e| {
                        failed(
                            format!("cannot start the secrets command of \"{env}\" ({shown}): {e}"),
                            "check secrets_command in environments.toml and that the program is installed".into(),
                        )
                    })?;
                if !output.status.success() {
                    let said = String::from_utf8_lossy(&output.stderr);
                    let first = said
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(200)
                        .collect::<String>();
                    return Err(failed(
                        format!(
                            "the secrets command of \"{env}\" ({shown}) failed for {name}: {} {first}",
                            output.status
                        ),
                        "run it by hand to see why (logged in? the secret's path?)".into(),
                    ));
                }
                let value = String::from_utf8(output.stdout).map_err(|_| {
                    failed(
                        format!("the secrets command of \"{env}\" printed no text for {name}"),
                        "it must print the value alone".into(),
                    )
                })?;
                Ok(value.trim_end_matches(['\n', '\r']).to_string())
            }
        }
    }
}

/// `path` without `.` and `..`, to compare folders that were written two ways.
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The places in a catalogue file's text where a secret is written as a value instead of a
/// reference (`${secret.NAME}` or `${VAR}`): a secret-named key anywhere, or a password in a url.
/// Each is described by its key and line, never by its value.
pub fn literal_secrets(text: &str) -> Vec<String> {
    let Ok(table) = toml::de::DeTable::parse(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    walk(text, table.get_ref(), "", &mut found);
    found
}

fn walk(text: &str, table: &toml::de::DeTable<'_>, path: &str, found: &mut Vec<String>) {
    use toml::de::DeValue;
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        let here = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        let line = text[..value.span().start].lines().count().max(1);
        match value.get_ref() {
            DeValue::Table(inner) => walk(text, inner, &here, found),
            DeValue::String(s) => {
                let is_reference = |s: &str| {
                    let rest = ferry_connectors::secret::interpolate_with(s, |_| Ok(String::new()));
                    rest.is_ok_and(|r| r.is_empty()) && !s.is_empty()
                };
                if SECRET_KEYS.contains(&name.to_ascii_lowercase().as_str()) && !is_reference(s) {
                    found.push(format!(
                        "{here} (line {line}) holds a value, not a reference"
                    ));
                } else if name == "url"
                    && let Ok(url) = url::Url::parse(s)
                    && let Some(password) = url.password()
                {
                    let decoded = percent_decode(password);
                    if !is_reference(&decoded) {
                        found.push(format!("{here} (line {line}) has a password in it"));
                    }
                }
            }
            _ => {}
        }
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_written_as_values_are_found_and_never_quoted() {
        let text = "url = \"postgres://u:hunter2@h/db\"\nuser = \"u\"\npassword = \"hunter2\"\n[x]\ntoken = \"${secret.t}\"\n";
        let mut found = literal_secrets(text);
        found.sort();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|f| !f.contains("hunter2")));
        assert!(
            found[1].contains("url (line 1) has a password")
                && found[0].contains("password (line 3)"),
            "{found:?}"
        );
        assert!(
            literal_secrets("password = \"${secret.pg}\"\nurl = \"postgres://u@h/db\"").is_empty()
        );
    }

    #[test]
    fn a_secrets_file_inside_the_project_is_refused() {
        let root = Path::new("/p/project");
        let inside = Secrets::from_settings(root, "dev", Some("secrets/dev.toml".into()), None);
        assert!(inside.unwrap_err().contains("inside the project"));
        let sneaky = Secrets::from_settings(root, "dev", Some("../project/x.toml".into()), None);
        assert!(sneaky.unwrap_err().contains("inside the project"));
        let outside = Secrets::from_settings(root, "dev", Some("../dev.toml".into()), None);
        assert!(matches!(outside, Ok(Secrets::File(_))));
    }
}
