//! The environment as a configuration source where any setting can also come from a file
//! (`NAME_FILE`): [`Environment`], re-exported from [`crate::settings`]. Every binary of the
//! workspace reads its environment through it.

use std::sync::Arc;

use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// How the caller narrows and renames the environment, as for an [`Env`].
type Select = Arc<dyn Fn(Env) -> Env + Send + Sync>;

/// The environment variables `select` picks, plus `NAME_FILE` for each of them: any
/// setting can come from a file, the way Docker and Kubernetes hand out secrets.
///
/// * the file's content is the value, as if it were the variable's, less any trailing
///   newline (`\n` or `\r\n`);
/// * setting both `NAME` and `NAME_FILE` is an error naming both;
/// * a file that cannot be read is an error naming the variable and the file;
/// * a setting whose own name ends in `_FILE` and is a path (`TLS_CERT_FILE`) stays a path:
///   with explicit names (`Env::only`) nothing else is possible, and where every name with a
///   prefix is read (`AUTH_<SECTION>__<FIELD>`) such settings are listed with
///   [`Environment::paths`].
///
/// ```
/// use figment::{Figment, providers::Env};
/// use verifier::settings::Environment;
///
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     database_url: Option<String>,
/// }
///
/// let environment = Environment::new(|env: Env| env.only(&["DATABASE_URL"]));
/// // With DATABASE_URL_FILE=/run/secrets/db set, `database_url` is that file's content.
/// let settings: Settings = Figment::from(environment).extract()?;
/// # Ok::<(), figment::Error>(())
/// ```
#[derive(Clone)]
pub struct Environment {
    select: Select,
    paths: Vec<String>,
}

impl Environment {
    /// The variables that `select` keeps from the raw environment, under the keys it gives
    /// them: pass the adapters you would call on `Env::raw()` (`only`, `ignore`, `split`,
    /// `filter_map`, ...; for a prefix use [`Environment::prefixed`]).
    pub fn new(select: impl Fn(Env) -> Env + Send + Sync + 'static) -> Self {
        Self {
            select: Arc::new(select),
            paths: Vec::new(),
        }
    }

    /// `Env::prefixed(prefix)` as an adapter: the variables whose names start with `prefix`
    /// (in any case), without it.
    ///
    /// ```
    /// use verifier::settings::Environment;
    /// let environment = Environment::new(|env| Environment::prefixed(env, "APP_").split("__"));
    /// # let _ = environment;
    /// ```
    pub fn prefixed(env: Env, prefix: &str) -> Env {
        let prefix = prefix.to_ascii_lowercase();
        env.filter_map(move |name| {
            let lower = name.as_str().to_ascii_lowercase();
            lower
                .strip_prefix(&prefix)
                .map(|rest| name.as_str()[name.len() - rest.len()..].to_owned().into())
        })
    }

    /// Settings (keys as `select` names them, e.g. `tls.cert_file`) whose names end in
    /// `_file` and that are paths, not a secret to read from a file.
    ///
    /// ```
    /// use verifier::settings::Environment;
    /// // AUTH_TLS__CERT_FILE is the path `tls.cert_file`, not a file holding `tls.cert`.
    /// let environment = Environment::new(|env| Environment::prefixed(env, "AUTH_").split("__"))
    ///     .paths(["tls.cert_file", "tls.key_file"]);
    /// # let _ = environment;
    /// ```
    pub fn paths<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.paths.extend(keys.into_iter().map(Into::into));
        self
    }

    /// The key under which `select` reads the variable `name` when it is renamed `as_name`.
    fn key(&self, name: &str, as_name: &str) -> Option<String> {
        let (name, as_name) = (name.to_owned(), as_name.to_owned());
        let env = (self.select)(
            Env::raw().filter_map(move |k| (k == name.as_str()).then(|| as_name.clone().into())),
        );
        env.iter().next().map(|(key, _)| key.as_str().to_owned())
    }

    /// Every variable this provider reads: its name, its value (a path for a file
    /// variable), the key it sets, and whether it names a file.
    fn variables(&self) -> Vec<Variable> {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| !k.trim().is_empty())
            .collect();
        let mut found = Vec::new();
        for (name, value) in vars {
            let plain = self.key(&name, &name);
            let base = name
                .strip_suffix("_FILE")
                .or_else(|| name.strip_suffix("_file"))
                .filter(|base| !base.is_empty());
            let from_file = base.and_then(|base| Some((base.to_owned(), self.key(&name, base)?)));
            let from_file = match (&plain, from_file) {
                (Some(key), Some(_)) if self.paths.contains(key) => None,
                (_, from_file) => from_file,
            };
            let (key, file_of) = match (from_file, plain) {
                (Some((base, key)), _) => (key, Some(base)),
                (None, Some(key)) => (key, None),
                (None, None) => continue,
            };
            found.push(Variable {
                name,
                value,
                key,
                file_of,
            });
        }
        found
    }

    /// Every (key, value) this provider gives, files read.
    fn values(&self) -> Result<Vec<(String, String)>, String> {
        let variables = self.variables();
        let mut values = Vec::new();
        for variable in &variables {
            let Some(base) = &variable.file_of else {
                values.push((variable.key.clone(), variable.value.clone()));
                continue;
            };
            let name = &variable.name;
            if std::env::var_os(base).is_some() {
                return Err(format!(
                    "both {base} and {name} are set: set one of them ({name} names a file \
                     that holds the value of {base})"
                ));
            }
            let path = &variable.value;
            let content = std::fs::read_to_string(path)
                .map_err(|e| format!("{name}: cannot read the file {path:?}: {e}"))?;
            values.push((
                variable.key.clone(),
                content.trim_end_matches(['\n', '\r']).to_owned(),
            ));
        }
        Ok(values)
    }
}

/// One variable an [`Environment`] reads.
struct Variable {
    /// Its name, as set.
    name: String,
    /// Its value: the setting's, or the path of the file that holds it.
    value: String,
    /// The setting's key.
    key: String,
    /// For `NAME_FILE`: `NAME`.
    file_of: Option<String>,
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        // Errors name the variable that set a key, as figment's `Env` does.
        let names: Vec<(String, String)> = self
            .variables()
            .into_iter()
            .map(|variable| (variable.key, variable.name))
            .collect();
        Metadata::named("environment variable(s) or their *_FILE files").interpolater(
            move |_profile, keys| {
                let key = keys.join(".");
                names
                    .iter()
                    .find(|(known, _)| known.eq_ignore_ascii_case(&key))
                    .map_or_else(|| key.to_ascii_uppercase(), |(_, name)| name.clone())
            },
        )
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in self.values()? {
            let value: Value = value.parse().unwrap_or_else(|never| match never {});
            insert(&mut dict, &key, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Puts `value` at the dotted `key` of `dict`, making the dictionaries on the way; a later
/// value for the same key wins, as with figment's `Env`.
fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // figment's Jail hands out its own large error type.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

    use figment::{Figment, Jail};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        database_url: Option<String>,
        port: Option<u16>,
        #[serde(default)]
        tls: Tls,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Tls {
        cert_file: Option<String>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        secret: Option<String>,
    }

    fn load() -> Result<Settings, figment::Error> {
        Figment::new()
            .merge(Environment::new(|env| {
                env.only(&["DATABASE_URL", "PORT", "TLS_CERT_FILE"])
                    .map(|k| {
                        k.as_str()
                            .to_ascii_lowercase()
                            .replace("tls_", "tls.")
                            .into()
                    })
            }))
            .merge(
                Environment::new(|env| Environment::prefixed(env, "APP_").split("__"))
                    .paths(["tls.cert_file"]),
            )
            .extract()
    }

    #[test]
    fn a_setting_comes_from_the_file_its_file_variable_names_without_the_trailing_newline() {
        Jail::expect_with(|jail| {
            jail.create_file("db", "postgres://u:p@db/auth\r\n")?;
            jail.create_file("secret", "s3cret\n\n")?;
            jail.set_env("DATABASE_URL_FILE", "db");
            jail.set_env("APP_NESTED__SECRET_FILE", "secret");
            jail.set_env("PORT", "8080");
            let settings = load()?;
            assert_eq!(
                settings.database_url.as_deref(),
                Some("postgres://u:p@db/auth")
            );
            assert_eq!(settings.nested.secret.as_deref(), Some("s3cret"));
            assert_eq!(settings.port, Some(8080));
            Ok(())
        });
    }

    #[test]
    fn setting_both_a_variable_and_its_file_variable_is_an_error_naming_both() {
        Jail::expect_with(|jail| {
            jail.create_file("db", "postgres://file")?;
            jail.set_env("DATABASE_URL", "postgres://env");
            jail.set_env("DATABASE_URL_FILE", "db");
            let error = load().unwrap_err().to_string();
            assert!(
                error.contains("DATABASE_URL and DATABASE_URL_FILE"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_the_variable_and_the_file() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_NESTED__SECRET_FILE", "/nonexistent/secret");
            let error = load().unwrap_err().to_string();
            assert!(
                error.contains("APP_NESTED__SECRET_FILE") && error.contains("/nonexistent/secret"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn path_settings_whose_names_end_in_file_stay_paths() {
        Jail::expect_with(|jail| {
            jail.set_env("TLS_CERT_FILE", "/etc/tls/cert.pem");
            assert_eq!(load()?.tls.cert_file.as_deref(), Some("/etc/tls/cert.pem"));
            jail.set_env("TLS_CERT_FILE", "");
            jail.set_env("APP_TLS__CERT_FILE", "/etc/tls/other.pem");
            assert_eq!(load()?.tls.cert_file.as_deref(), Some("/etc/tls/other.pem"));
            Ok(())
        });
    }

    #[test]
    fn variables_outside_the_selection_are_ignored_with_or_without_file() {
        Jail::expect_with(|jail| {
            jail.set_env("UNRELATED_FILE", "/nonexistent");
            jail.set_env("UNRELATED", "x");
            assert_eq!(load()?.database_url, None);
            Ok(())
        });
    }
}
