//! Values that must not end up in logs: API tokens, passwords.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// A secret from the configuration file: written inline, or read from an environment variable
/// or a file when the configuration is loaded.
///
/// ```toml
/// api_token = "u+abc..."                            # inline
/// api_token = { env = "PAGERDUTY_API_TOKEN" }       # from the environment
/// api_token = { file = "secrets/pagerduty-token" }  # from a file, trailing newlines trimmed
/// ```
///
/// `Debug` and `Display` print `Secret(***)`, so a secret cannot leak through a `{:?}` of the
/// configuration; [`Secret::expose`] is the one way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    source: SecretSource,
    /// `None` only between deserializing and [`Secret::resolve`], which `Config` loading runs.
    value: Option<String>,
}

/// Where a secret's value comes from. Holds no part of the value, so it is safe to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the configuration file.
    Inline,
    /// Read from this environment variable at load time.
    Env(String),
    /// Read from this file at load time (as written; relative to the configuration file).
    File(PathBuf),
}

impl Secret {
    /// An inline secret, e.g. for tests.
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            source: SecretSource::Inline,
            value: Some(value.into()),
        }
    }

    /// The value. Call it only where the value is used (an `Authorization` header), never to log.
    ///
    /// # Panics
    ///
    /// If the secret was deserialized without going through `Config::load`/`Config::from_str`,
    /// which read `env` and `file` secrets; a section that adds a `Secret` field must resolve it
    /// in its `validate`.
    pub fn expose(&self) -> &str {
        self.value
            .as_deref()
            .expect("secret not resolved: load configuration through Config::load")
    }

    /// The value if it was read: `None` for an `env` or `file` secret whose reading failed (a
    /// problem already reported) or was left to the daemon (`Purpose::Enqueue`).
    pub fn resolved(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Where the value came from; safe to print.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// Reads `env` and `file` secrets. `base_dir` anchors relative file paths.
    pub(crate) fn resolve(
        &mut self,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        if self.value.is_some() {
            return Ok(());
        }
        let value = match &self.source {
            SecretSource::Inline => unreachable!("inline secrets carry their value"),
            SecretSource::Env(var) => match env(var) {
                None => return Err(format!("environment variable {var} is not set")),
                Some(v) if v.is_empty() => {
                    return Err(format!("environment variable {var} is empty"));
                }
                Some(v) => v,
            },
            SecretSource::File(path) => {
                let full = base_dir.join(path);
                let text = std::fs::read_to_string(&full)
                    .map_err(|e| format!("cannot read secret file {}: {e}", full.display()))?;
                let trimmed = text.trim_end_matches(['\n', '\r']);
                if trimmed.is_empty() {
                    return Err(format!("secret file {} is empty", full.display()));
                }
                trimmed.to_owned()
            }
        };
        self.value = Some(value);
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, { env = \"VARIABLE\" } or { file = \"path\" }")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Secret, E> {
                if value.is_empty() {
                    return Err(E::custom("secret must not be empty"));
                }
                Ok(Secret::new(value))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
                let mut source = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    if value.is_empty() {
                        return Err(de::Error::custom(format!("`{key}` must not be empty")));
                    }
                    let this = match key.as_str() {
                        "env" => SecretSource::Env(value),
                        "file" => SecretSource::File(PathBuf::from(value)),
                        _ => return Err(de::Error::unknown_field(&key, &["env", "file"])),
                    };
                    if source.replace(this).is_some() {
                        return Err(de::Error::custom("give either `env` or `file`, not both"));
                    }
                }
                let source = source.ok_or_else(|| {
                    de::Error::custom("expected { env = \"VARIABLE\" } or { file = \"path\" }")
                })?;
                Ok(Secret {
                    source,
                    value: None,
                })
            }
        }

        deserializer.deserialize_any(SecretVisitor)
    }
}
