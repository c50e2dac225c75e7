//! `[server]`: where the daemon listens and keeps its files.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::validate::Validator;

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port of the HTTP listener (sources, webhooks, API, metrics). Loopback by
    /// default: exposing it is a deliberate choice. Port 0 picks a free port.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Directory for the daemon's files, the SQLite store among them. A relative path is
    /// relative to the configuration file's directory; use [`crate::Config::data_dir`] for the
    /// resolved path.
    pub data_dir: PathBuf,
    /// This daemon's name among the replicas sharing a PostgreSQL store: shown by `/readyz`,
    /// the status page and the logs (which replica leads), and part of its claims' owner.
    /// Unset: the host name.
    pub replica_name: Option<String>,
}

pub(crate) const DEFAULT_DATA_DIR: &str = "./pagerbridge-data";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            replica_name: None,
        }
    }
}

impl ServerConfig {
    pub(crate) fn validate(&self, v: &mut Validator<'_>) {
        if self.data_dir.as_os_str().is_empty() {
            v.problem(
                "server.data_dir",
                "must not be empty (write \".\" for the configuration file's directory)",
            );
        }
        if let Some(name) = &self.replica_name
            && let Err(message) = check_replica_name(name)
        {
            v.problem("server.replica_name", message);
        }
    }
}

/// serde's own message ("invalid socket address syntax") does not say what would be right.
fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "{text:?} is not an IP address and port such as \"127.0.0.1:8080\" or \"[::]:8080\" \
             (host names are not accepted)"
        ))
    })
}

/// The longest replica name: it goes into claim owners and the status page.
pub const MAX_REPLICA_NAME: usize = 64;

/// A replica name: 1 to 64 letters, digits, `.`, `-`, `_`, as host names are.
pub fn check_replica_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_REPLICA_NAME {
        return Err(format!(
            "must be 1 to {MAX_REPLICA_NAME} characters, e.g. \"pagerbridge-a\""
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "{name:?}: {c:?} is not allowed; use letters, digits, `.`, `-` and `_`"
        ));
    }
    Ok(())
}
