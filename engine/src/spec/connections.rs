//! The `[connections]` of a pipeline file: the url picks the connector (by its scheme), and the
//! connector reads the other keys itself. The checker lends it `${VAR}` expansion, the pipeline's
//! folder and errors at their lines ([`Settings`]).

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
