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
}

pub(crate) const DEFAULT_DATA_DIR: &str = "./pagerbridge-data";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
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
