//! The values the write-back adapters' tests build again and again: settings for a monitor at
//! a URL, a change made in PagerDuty, the references the alerts carried, and one adapter call.
//! Include with `#[path = "common/changes.rs"] mod changes;`.

#![allow(dead_code)]

use std::time::Duration;

use jiff::Timestamp;
use pagerbridge_model::MonitorRef;
use pagerbridge_sync::writeback::{
    Action, Adapter, Applied, Change, Kind, Request, Settings, SettingsError, WriteError, build,
};
use serde_json::Value;

/// The incident the changes of the emulated-monitor tests belong to.
pub const INCIDENT: &str = "Q1ABC";
pub const INCIDENT_URL: &str = "https://acme.pagerduty.com/incidents/Q1ABC";
/// When those changes were made in PagerDuty.
pub const AT: &str = "2026-11-21T08:15:00Z";

/// The API user of the stand-ins that check a login (Zenoss, Centreon).
pub const USER: &str = "pagerbridge";
pub const PASSWORD: &str = "s3cret";

/// Settings for a monitor at `url` with `options`, a 5 s timeout and nothing else.
pub fn settings(url: &str, options: Value) -> Settings {
    Settings {
        url: Some(url.parse().expect("url")),
        timeout: Duration::from_secs(5),
        options,
        ..Settings::default()
    }
}

/// [`settings`] with [`USER`] and [`PASSWORD`].
pub fn login_settings(url: &str, options: Value) -> Settings {
    Settings {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        ..settings(url, options)
    }
}

/// Jane Doe's `action` on incident [`INCIDENT`] at [`AT`]; the comment says what she did and
/// links the incident.
pub fn change(action: Action) -> Change {
    Change {
        action,
        author: "Jane Doe".into(),
        comment: format!(
            "{} by Jane Doe in PagerDuty: {INCIDENT_URL}",
            action.as_str()
        ),
        incident_id: INCIDENT.into(),
        incident_url: Some(INCIDENT_URL.into()),
        expires_at: None,
        at: AT.parse().expect("ts"),
    }
}

/// A change made just now on incident `Q1TEST`, for the tests against real monitors.
pub fn change_now(action: Action, author: &str, comment: &str) -> Change {
    Change {
        action,
        author: author.into(),
        comment: comment.into(),
        incident_id: "Q1TEST".into(),
        incident_url: None,
        expires_at: None,
        at: Timestamp::now(),
    }
}

/// A host (`service: None`) or service of the Nagios family or Icinga 2.
pub fn object(host: &str, service: Option<&str>) -> MonitorRef {
    MonitorRef::Object {
        host: host.into(),
        service: service.map(str::to_owned),
        problem_id: None,
        last_problem_id: None,
    }
}

/// Zabbix's problem event 5021 of trigger 17500.
pub fn zabbix_event() -> MonitorRef {
    MonitorRef::ZabbixEvent {
        event_id: "5021".into(),
        trigger_id: Some("17500".into()),
    }
}

/// One call of `adapter` without a memo.
pub async fn apply(
    adapter: &dyn Adapter,
    target: &MonitorRef,
    change: &Change,
) -> Result<Applied, WriteError> {
    apply_memo(adapter, target, change, None).await
}

/// One call of `adapter` with the memo of the previous call.
pub async fn apply_memo(
    adapter: &dyn Adapter,
    target: &MonitorRef,
    change: &Change,
    memo: Option<&Value>,
) -> Result<Applied, WriteError> {
    adapter
        .apply(Request {
            target,
            change,
            memo,
        })
        .await
}

/// Why `build` refuses `settings` (it must).
pub fn refused(kind: Kind, settings: &Settings) -> SettingsError {
    build(kind, settings).err().expect("refused")
}

/// `build` takes `ok`, and refuses it without a URL and with `bad_url` (not http or https),
/// naming `url` both times.
pub fn assert_url_is_checked(kind: Kind, ok: &Settings, bad_url: &str) {
    assert!(build(kind, ok).is_ok(), "{kind:?} takes {ok:?}");
    let missing = Settings {
        url: None,
        ..ok.clone()
    };
    assert_eq!(refused(kind, &missing).field, "url");
    let bad: url::Url = bad_url.parse().expect("url");
    let e = refused(
        kind,
        &Settings {
            url: Some(bad.clone()),
            ..ok.clone()
        },
    );
    assert_eq!(e.field, "url");
    assert_eq!(
        e.message,
        format!("must be http or https, got {}", bad.scheme())
    );
}
