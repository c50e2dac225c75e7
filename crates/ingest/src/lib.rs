//! Decoders: one file per monitoring system, each a pure function from the monitor's payload to
//! [`Alert`]s, or to a [`DecodeError`] naming what was wrong. No I/O, no clock, no
//! configuration beyond the options passed in: easy to test with captured payloads and to feed
//! arbitrary bytes.

pub mod alertmanager;
pub mod centreon_broker;
pub mod generic;
pub mod grafana;
pub mod guance;
pub mod nagios;
pub mod zabbix;
pub mod zenoss;

pub use pagerbridge_model::{Alert, AlertState, DecodeError, Entity, MonitorRef, SourceKind};
use serde_json::Value;

/// A source's decoder with its options: what an ingest route runs on each request body.
#[derive(Debug, Clone)]
pub enum Decoder {
    Alertmanager(alertmanager::Options),
    Grafana,
    Guance,
    Generic(Box<generic::CompiledMapping>),
    Zabbix,
    CentreonBroker(centreon_broker::Options),
    Zenoss,
    /// Icinga 2, Nagios, Naemon, Centreon Engine, openITCOCKPIT: a JSON object of macros
    /// (their usual path is `pagerbridge send`, which does not go through a route).
    Nagios(SourceKind),
}

/// A problem with a source's configuration: the option (`options.incident_per`, `mapping`)
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub field: String,
    pub message: String,
}

fn options<T: serde::de::DeserializeOwned + Default>(v: Option<&Value>) -> Result<T, OptionError> {
    match v {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| OptionError {
            field: "options".into(),
            message: e.to_string(),
        }),
    }
}

impl Decoder {
    /// The decoder for `kind`, from the `options` and `mapping` of its configuration (as JSON
    /// values). Options a kind does not take, or a missing mapping, are errors.
    pub fn build(
        kind: SourceKind,
        opts: Option<&Value>,
        mapping: Option<&Value>,
    ) -> Result<Decoder, OptionError> {
        let no = |field: &str, what: &str| OptionError {
            field: field.into(),
            message: format!("{what} {kind} sources do not take one"),
        };
        if mapping.is_some() && kind != SourceKind::Generic {
            return Err(no("mapping", "only generic sources have a mapping;"));
        }
        let takes_options = matches!(kind, SourceKind::Alertmanager | SourceKind::CentreonBroker);
        if opts.is_some() && !takes_options {
            return Err(no(
                "options",
                "options are for alertmanager and centreon_broker sources;",
            ));
        }
        Ok(match kind {
            SourceKind::Alertmanager => Decoder::Alertmanager(options(opts)?),
            SourceKind::CentreonBroker => Decoder::CentreonBroker(options(opts)?),
            SourceKind::Grafana => Decoder::Grafana,
            SourceKind::Guance => Decoder::Guance,
            SourceKind::Zabbix => Decoder::Zabbix,
            SourceKind::Zenoss => Decoder::Zenoss,
            SourceKind::Generic => {
                let Some(m) = mapping else {
                    return Err(OptionError {
                        field: "mapping".into(),
                        message: "a generic source needs a mapping ([sources.mapping])".into(),
                    });
                };
                let m: generic::Mapping =
                    serde_json::from_value(m.clone()).map_err(|e| OptionError {
                        field: "mapping".into(),
                        message: e.to_string(),
                    })?;
                Decoder::Generic(Box::new(generic::compile(&m).map_err(|message| {
                    OptionError {
                        field: "mapping".into(),
                        message,
                    }
                })?))
            }
            k if k.is_nagios_family() => Decoder::Nagios(k),
            SourceKind::Pagerduty => {
                return Err(OptionError {
                    field: "kind".into(),
                    message: "events in PagerDuty's format go to the relay routes (/v2/enqueue): no source is needed".into(),
                });
            }
            other => unreachable!("every kind is handled above: {other}"),
        })
    }

    pub fn kind(&self) -> SourceKind {
        match self {
            Decoder::Alertmanager(_) => SourceKind::Alertmanager,
            Decoder::Grafana => SourceKind::Grafana,
            Decoder::Guance => SourceKind::Guance,
            Decoder::Generic(_) => SourceKind::Generic,
            Decoder::Zabbix => SourceKind::Zabbix,
            Decoder::CentreonBroker(_) => SourceKind::CentreonBroker,
            Decoder::Zenoss => SourceKind::Zenoss,
            Decoder::Nagios(k) => *k,
        }
    }

    /// Decodes one request body.
    pub fn decode(&self, body: &[u8]) -> Result<Vec<Alert>, DecodeError> {
        match self {
            Decoder::Alertmanager(o) => alertmanager::decode(body, o),
            Decoder::Grafana => grafana::decode(body),
            Decoder::Guance => guance::decode(body),
            Decoder::Generic(m) => generic::decode(body, m),
            Decoder::Zabbix => zabbix::decode(body),
            Decoder::CentreonBroker(o) => centreon_broker::decode(body, o),
            Decoder::Zenoss => zenoss::decode(body),
            Decoder::Nagios(k) => nagios::decode(*k, body).map(|a| vec![a]),
        }
    }
}

/// How a JSON value is named in an error message ("expected a string, got an array").
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
