//! The `[connections]` of a pipeline file: the url picks the connector (by its scheme), and the
//! connector reads the other keys itself. The checker lends it `${VAR}` expansion, the pipeline's
//! folder and errors at their lines ([`Settings`]). In an environment, the connections a pipeline
//! names are the catalogue's files (`environments/<env>/connections/<name>.toml`), read the same way.

use ferry_connectors::connector::{Settings, split_keys};
use ferry_connectors::registry;
use serde::Deserialize;

use super::raw::RawUrl;
use super::*;

impl Checker<'_> {
    /// One `[connections.NAME]` table.
    pub(super) fn connection(&mut self, mut keys: Keys<'_>) -> Option<Arc<dyn Connection>> {
        let url_keys = split_keys(&mut keys, &["url"]);
        let url = match RawUrl::deserialize(toml::de::Deserializer::from(url_keys)) {
            Ok(raw) => raw.url,
            Err(_) => {
                self.errors.push(
                    self.loc
                        .error(keys.span(), "the connection has no url")
                        .hint(format!(
                            "url = \"{}\" (the scheme says which kind of connection it is)",
                            registry::connectors()[0].example()
                        )),
                );
                return None;
            }
        };
        let span = url.span();
        let url = Spanned::new(span.clone(), self.interpolate_setting(url)?);
        match registry::for_url(url.get_ref()) {
            Ok(connector) => connector.connection(url, keys, self),
            // Reported at the connection's url line; never silently dropped.
            Err(e) => {
                let err = self.connector_error(span, e);
                self.errors.push(err);
                None
            }
        }
    }
}

impl Checker<'_> {
    /// The environment's connection `name`, from its catalogue file (errors at that file's lines);
    /// `None` when the catalogue has no such file (reported where the pipeline names it).
    pub(super) fn environment_connection(
        &mut self,
        env: &crate::environment::Environment,
        name: &str,
    ) -> Option<Arc<dyn Connection>> {
        let file = env.asset_file(crate::environment::AssetKind::Connections, name);
        let text = std::fs::read_to_string(&file).ok()?;
        let loc = Locator::new(&file, &text);
        let literal = crate::environment::literal_secrets(&text);
        if !literal.is_empty() {
            self.errors.push(
                loc.whole_file(format!("a secret is written in the catalogue: {}", literal.join("; ")))
                    .hint("write a reference instead (password = \"${secret.NAME}\", the value in the environment's secrets_file or secrets_command): catalogue files are committed and promoted"),
            );
            return None;
        }
        let tables = match toml::de::DeTable::parse(&text) {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(toml_error(&loc, &e));
                return None;
            }
        };
        let dir = env.project.clone();
        let mut own = Checker::new(&loc, &dir, Some(env));
        let connection = own.connection(tables);
        self.errors.append(&mut own.errors);
        connection
    }
}

/// The connections a pipeline's sources, steps and target name, each once.
pub(super) fn referenced_connections(
    raw: &super::raw::RawPipeline,
    target: &Keys<'_>,
) -> Vec<String> {
    let mut names: Vec<String> = raw
        .sources
        .values()
        .filter_map(|s| s.get_ref().connection.as_ref())
        .chain(
            raw.steps
                .iter()
                .filter_map(|s| s.get_ref().connection.as_ref()),
        )
        .map(|c| c.get_ref().clone())
        .collect();
    let target_connection = target
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref() == "connection");
    if let Some((_, value)) = target_connection
        && let toml::de::DeValue::String(c) = value.get_ref()
    {
        names.push(c.to_string());
    }
    names.sort();
    names.dedup();
    names
}

impl Settings for Checker<'_> {
    fn credential(&mut self, value: Spanned<String>) -> Option<String> {
        self.interpolate(value)
    }

    fn setting(&mut self, value: Spanned<String>) -> Option<String> {
        self.interpolate_setting(value)
    }

    fn base_dir(&self) -> &Path {
        self.dir
    }

    fn error(&mut self, span: std::ops::Range<usize>, message: String, hint: Option<String>) {
        let err = self.loc.error(span, message);
        self.errors.push(match hint {
            Some(h) => err.hint(h),
            None => err,
        });
    }

    /// serde says "unknown field `client_id`, expected one of `user`, `password`"; the user reads
    /// "client_id is not a key of a PostgreSQL connection" with the keys it has.
    fn invalid_keys(&mut self, error: toml::de::Error, whose: &str) {
        let mut err = toml_error(self.loc, &error);
        if let Some(unknown) = UnknownKey::of(&error) {
            err.message = format!("{} is not a key of {whose}", unknown.key);
            if unknown.expected.is_empty() {
                err.hint = Some(format!(
                    "{whose} has no keys of its own: remove {}",
                    unknown.key
                ));
            }
        }
        self.errors.push(err);
    }
}
