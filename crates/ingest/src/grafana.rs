//! Grafana unified alerting: the JSON a contact point of type `webhook` posts (payload
//! version 1). Grafana's alerting is an Alertmanager underneath, so each element of `alerts` has
//! Alertmanager's shape ([`WebhookAlert`]) plus Grafana's links, query values and image.
//!
//! One [`Alert`] per Grafana alert, keyed by its fingerprint. A payload with no alerts decodes
//! to no alerts.

use pagerbridge_model::{Alert, DecodeError, MonitorRef, SourceKind};
use pagerduty::events::Image;
use serde_json::{Map, Value, json};

use crate::alertmanager::{Fields, WebhookAlert, link, non_empty, parse_object};
use crate::type_name;

/// The webhook payload version this decoder reads (absent is accepted too).
pub const PAYLOAD_VERSION: &str = "1";

pub fn decode(body: &[u8]) -> Result<Vec<Alert>, DecodeError> {
    let root = parse_object(body)?;
    let top = Fields::root(&root);
    if let Some(v) = top.opt_str("version")?
        && v != PAYLOAD_VERSION
    {
        return Err(top.error(
            "version",
            format!(
                "unsupported webhook payload version {v:?}: pagerbridge reads Grafana's version \
                 \"{PAYLOAD_VERSION}\""
            ),
        ));
    }
    if !top.has("alerts") && (top.has("evalMatches") || top.has("ruleName")) {
        return Err(top.error(
            "alerts",
            "missing: this is a legacy Grafana alerting payload (ruleName, evalMatches); \
             pagerbridge reads unified alerting's webhook contact point",
        ));
    }
    let external_url = non_empty(top.opt_str("externalURL")?);
    top.array("alerts")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("alerts[{i}]");
            decode_alert(&Fields::of(v, &path)?, external_url.as_deref())
        })
        .collect()
}

fn decode_alert(f: &Fields<'_>, external_url: Option<&str>) -> Result<Alert, DecodeError> {
    let a = WebhookAlert::read(f)?;
    let silence_url = non_empty(f.opt_str("silenceURL")?);
    let dashboard_url = non_empty(f.opt_str("dashboardURL")?);
    let panel_url = non_empty(f.opt_str("panelURL")?);
    let image_url = non_empty(f.opt_str("imageURL")?);
    let value_string = non_empty(f.opt_str("valueString")?);
    let values = match f.object().get("values") {
        None | Some(Value::Null) => value_string
            .as_deref()
            .map(values_from_value_string)
            .unwrap_or_default(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(f.error(
                "values",
                format!("expected an object, got {}", type_name(other)),
            ));
        }
    };

    let summary = a.summary();
    let mut alert = Alert::new(
        SourceKind::Grafana,
        a.state(),
        summary.clone(),
        a.dedup_hint(),
    );
    alert.source_instance = external_url.map(str::to_owned);
    alert.entity = a.entity();
    alert.status = Some(a.status_word());
    alert.severity = a.severity();
    let mut details = a.details();
    if !values.is_empty() {
        details.insert("values".into(), Value::Object(values));
    }
    if let Some(s) = &value_string {
        details.insert("valueString".into(), json!(s));
    }
    alert.details = details;

    let mut links = Vec::new();
    if let Some(u) = &a.generator_url {
        links.push(link(u, "Alert rule"));
    }
    if let Some(u) = &dashboard_url {
        links.push(link(u, "Dashboard"));
    }
    if let Some(u) = &panel_url {
        links.push(link(u, "Panel"));
    }
    if let Some(u) = &silence_url {
        links.push(link(u, "Silence"));
    }
    if let Some(u) = crate::alertmanager::runbook(&a.annotations) {
        links.push(link(&u, "Runbook"));
    }
    if let Some(img) = image_url {
        // PagerDuty only shows images served over HTTPS; anything else is still worth a click.
        if img.starts_with("https://") {
            alert.images.push(Image {
                src: img,
                href: panel_url.clone().or_else(|| dashboard_url.clone()),
                alt: Some(summary),
            });
        } else {
            links.push(link(&img, "Image"));
        }
    }
    alert.links = links;
    alert.started_at = a.starts_at.as_ref().map(|t| t.1);
    alert.occurred_at = a.occurred_at();
    alert.monitor_ref = MonitorRef::GrafanaAlert {
        fingerprint: a.dedup_hint(),
        labels: a.labels.clone(),
    };
    alert.client = Some("Grafana".into());
    alert.client_url = external_url.map(str::to_owned);
    Ok(alert)
}

/// Older Grafana versions send only `valueString`
/// (`[ var='B' labels={instance=a} value=44.2 ], [ var='C' labels={} value=1 ]`): the numbers
/// in it, by query name (`var`, else `metric`, else `value`, `value2`...). What does not parse is
/// still in `valueString`.
fn values_from_value_string(s: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, part) in s.split("], [").enumerate() {
        let Some(number) = after(part, "value=").and_then(|rest| {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ']')
                .unwrap_or(rest.len());
            rest[..end].parse::<f64>().ok()
        }) else {
            continue;
        };
        let Some(number) = serde_json::Number::from_f64(number) else {
            continue;
        };
        let name = quoted_after(part, "var='")
            .or_else(|| quoted_after(part, "metric='"))
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if i == 0 {
                    "value".to_owned()
                } else {
                    format!("value{}", i + 1)
                }
            });
        out.entry(name).or_insert(Value::Number(number));
    }
    out
}

/// The text after the last `key` (labels may contain `value=` too; the value comes last).
fn after<'s>(s: &'s str, key: &str) -> Option<&'s str> {
    s.rfind(key).map(|i| &s[i + key.len()..])
}

fn quoted_after<'s>(s: &'s str, key: &str) -> Option<&'s str> {
    let rest = &s[s.find(key)? + key.len()..];
    rest.find('\'').map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_strings_become_numbers() {
        let v = values_from_value_string(
            "[ var='B' labels={instance=a} value=44.2 ], [ var='C' labels={} value=1 ]",
        );
        assert_eq!(v["B"], 44.2);
        assert_eq!(v["C"], 1.0);
        let v = values_from_value_string("[ metric='' labels={} value=14151.331895396988 ]");
        assert_eq!(v["value"], 14151.331895396988);
        assert!(values_from_value_string("[ no numbers here ]").is_empty());
        assert!(values_from_value_string("value=NaN").is_empty());
        assert!(values_from_value_string("").is_empty());
    }
}
