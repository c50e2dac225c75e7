//! `[pagerduty]`: how to reach PagerDuty (or the emulator standing in for it).

use std::fmt;

use pagerduty::{ClientConfig, ProxyConfig};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use url::Url;

use crate::duration::Duration;
use crate::secret::Secret;
use crate::validate::Validator;

/// `[pagerduty]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// PagerDuty service region of the account; picks the default Events and REST hosts.
    pub region: Region,
    /// Base URL of the Events API, overriding the region's (e.g. the emulator).
    pub events_url: Option<HttpUrl>,
    /// Base URL of the REST API, overriding the region's.
    pub rest_url: Option<HttpUrl>,
    /// Limit on a whole request, connecting included.
    pub timeout: Duration,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Proxy for both APIs. Unset: from the environment (`HTTPS_PROXY`, `NO_PROXY`...).
    pub proxy: Option<Proxy>,
    /// Hosts reached directly despite `proxy` (`NO_PROXY` syntax); only with an explicit proxy.
    pub no_proxy: Option<String>,
    /// REST API token, for the features that read or write incidents.
    pub api_token: Option<Secret>,
    /// Email of the PagerDuty user that REST writes act as (the `From` header). Account-level
    /// tokens require it.
    pub from: Option<Email>,
}

impl Default for PagerDutyConfig {
    fn default() -> Self {
        PagerDutyConfig {
            region: Region::Us,
            events_url: None,
            rest_url: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            proxy: None,
            no_proxy: None,
            api_token: None,
            from: None,
        }
    }
}

impl PagerDutyConfig {
    /// The client settings these fields describe, with the default user agent.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = match self.region {
            Region::Us => ClientConfig::default(),
            Region::Eu => ClientConfig::eu(),
        };
        if let Some(url) = &self.events_url {
            config.events_url = url.0.clone();
        }
        if let Some(url) = &self.rest_url {
            config.rest_url = url.0.clone();
        }
        config.timeout = self.timeout.get();
        config.connect_timeout = self.connect_timeout.get();
        config.proxy = match &self.proxy {
            None => ProxyConfig::Environment,
            Some(Proxy::Direct) => ProxyConfig::Direct,
            Some(Proxy::Url(url)) => ProxyConfig::Explicit {
                url: url.to_string(),
                no_proxy: self.no_proxy.clone(),
            },
        };
        config
    }

    pub(crate) fn validate(&mut self, v: &mut Validator<'_>) {
        if self.timeout.is_zero() {
            v.problem("pagerduty.timeout", "must be longer than 0s");
        }
        if self.connect_timeout.is_zero() {
            v.problem("pagerduty.connect_timeout", "must be longer than 0s");
        }
        if self.no_proxy.is_some() && !matches!(self.proxy, Some(Proxy::Url(_))) {
            v.problem(
                "pagerduty.no_proxy",
                "only applies with an explicit `proxy` URL; without one, set NO_PROXY in the \
                 environment instead",
            );
        }
        v.secret("pagerduty.api_token", &mut self.api_token);
    }
}

/// PagerDuty service region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `events.pagerduty.com`, `api.pagerduty.com`
    #[default]
    Us,
    /// `events.eu.pagerduty.com`, `api.eu.pagerduty.com`
    Eu,
}

/// An `http://` or `https://` base URL, without query or fragment (API paths are appended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(Url);

impl HttpUrl {
    /// The URL itself.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for HttpUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = parse_http_url(text)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{text:?}: give a base URL without `?query` or `#fragment`"
            ));
        }
        Ok(HttpUrl(url))
    }
}

fn parse_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must be an http:// or https:// URL"));
    }
    if url.host().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    Ok(url)
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// `proxy`: `"none"` or a proxy URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// `"none"`: connect directly, whatever the environment says.
    Direct,
    /// An `http://` or `https://` proxy for every request.
    Url(Url),
}

impl<'de> Deserialize<'de> for Proxy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "none" {
            return Ok(Proxy::Direct);
        }
        parse_http_url(&text)
            .map(Proxy::Url)
            .map_err(|e| de::Error::custom(format!("{e} (or \"none\" for no proxy)")))
    }
}

/// An email address, checked for its shape only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Email {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let looks_right = text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }) && !text.chars().any(|c| c.is_whitespace() || c.is_control());
        if looks_right {
            Ok(Email(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not an email address (PagerDuty expects the login email of a user, \
                 e.g. \"ops@example.com\")"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for good in ["ops@example.com", "a.b+c@sub.example.co"] {
            assert!(good.parse::<Email>().is_ok(), "{good}");
        }
        for bad in [
            "ops",
            "ops@",
            "@example.com",
            "ops@localhost",
            "a@b@c.com",
            "a b@c.com",
            "ops@.com",
            "ops@example.",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad}");
        }
    }

    #[test]
    fn base_urls() {
        assert!("http://127.0.0.1:8787".parse::<HttpUrl>().is_ok());
        assert!(
            "https://events.pagerduty.com/prefix/"
                .parse::<HttpUrl>()
                .is_ok()
        );
        assert!(
            "ftp://events.pagerduty.com"
                .parse::<HttpUrl>()
                .unwrap_err()
                .contains("http:// or https://")
        );
        assert!("events.pagerduty.com".parse::<HttpUrl>().is_err());
        assert!("https://x.example/?a=1".parse::<HttpUrl>().is_err());
    }

    #[test]
    fn client_config_follows_region_and_overrides() {
        let mut pd = PagerDutyConfig {
            region: Region::Eu,
            ..Default::default()
        };
        let c = pd.client_config();
        assert_eq!(c.events_url.as_str(), "https://events.eu.pagerduty.com/");
        assert_eq!(c.rest_url.as_str(), "https://api.eu.pagerduty.com/");
        assert_eq!(c.timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.connect_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.proxy, ProxyConfig::Environment);
        assert_eq!(c.user_agent, pagerduty::client::user_agent());

        pd.events_url = Some("http://127.0.0.1:8787".parse().unwrap());
        pd.proxy = Some(Proxy::Url(Url::parse("http://proxy.example:3128").unwrap()));
        pd.no_proxy = Some("localhost".into());
        let c = pd.client_config();
        assert_eq!(c.events_url.as_str(), "http://127.0.0.1:8787/");
        assert_eq!(c.rest_url.as_str(), "https://api.eu.pagerduty.com/");
        assert_eq!(
            c.proxy,
            ProxyConfig::Explicit {
                url: "http://proxy.example:3128/".into(),
                no_proxy: Some("localhost".into())
            }
        );
        pd.proxy = Some(Proxy::Direct);
        assert_eq!(pd.client_config().proxy, ProxyConfig::Direct);
    }
}
