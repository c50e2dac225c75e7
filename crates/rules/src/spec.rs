//! The rules as the configuration file writes them (`[routing]`, `[[rules]]`), before they
//! are compiled. Every table is `deny_unknown_fields`, so a misspelt key is an error with its
//! line, not a rule that silently never matches.

use std::collections::BTreeMap;

use pagerduty::events::Severity;
use serde::Deserialize;

/// `[routing]`: what applies when no rule says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSpec {
    /// Where alerts go when no rule and no payload names a routing key.
    pub default_routing_key: Option<String>,
    /// Severity when nothing else decides it (default `error`).
    pub default_severity: Option<Severity>,
    /// Per source kind, the monitor's status words to PagerDuty severities, on top of the
    /// built-in maps (`[routing.severity.nagios] WARNING = "warning"`).
    pub severity: BTreeMap<String, BTreeMap<String, Severity>>,
    /// Template of the dedup key when no rule sets one; default: the source's own identity of
    /// the problem (`{{ dedup_hint }}`).
    pub dedup_key: Option<String>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown by `route test` and in logs; defaults to `rules[N]`.
    pub name: Option<String>,
    /// When the rule applies; absent: always.
    #[serde(rename = "match")]
    pub matcher: Option<MatchSpec>,
    /// The PagerDuty integration key this rule sends to.
    pub routing_key: Option<String>,
    pub severity: Option<Severity>,
    /// What PagerDuty should do: `trigger`, `acknowledge`, `resolve`, or `none` (send nothing).
    /// Default: from the alert's state (problem → trigger, recovery → resolve, ...).
    pub action: Option<String>,
    /// Templates (see docs/rules.md for what they can use).
    pub dedup_key: Option<String>,
    pub summary: Option<String>,
    /// Links to add; `href` and `text` are templates.
    pub links: Vec<LinkSpec>,
    /// Details to add to `custom_details`: strings are templates, other values are kept.
    pub details: BTreeMap<String, toml::Value>,
    /// Stop here and send nothing.
    pub drop: bool,
    /// Also try the rules after this one: each further matching rule sends its own event (to
    /// another service, typically).
    #[serde(rename = "continue")]
    pub continue_matching: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub href: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// A condition. Exactly one of: `all`, `any`, `not`, or `field` with one comparison.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchSpec {
    pub all: Option<Vec<MatchSpec>>,
    pub any: Option<Vec<MatchSpec>>,
    pub not: Option<Box<MatchSpec>>,
    /// A path into the alert: `source`, `state`, `status`, `severity`, `summary`, `host`,
    /// `service`, `labels.NAME`, `details.a.b`, `entity.host`, `source_instance`, ...
    pub field: Option<String>,
    /// Equal to this value (strings compare with the field's text, numbers numerically).
    pub equals: Option<toml::Value>,
    /// Equal to one of these.
    pub one_of: Option<Vec<toml::Value>>,
    /// A regular expression that must match the whole value (`(?i)` for any case).
    pub regex: Option<String>,
    /// A glob (`*`, `?`) that must match the whole value.
    pub glob: Option<String>,
    /// Whether the field is present.
    pub exists: Option<bool>,
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}
