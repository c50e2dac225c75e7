//! The Nagios family — Icinga 2, Nagios 4, Naemon, Centreon Engine, openITCOCKPIT — notifies by
//! running a command with macros. `pagerbridge send` collects them (from flags, from the
//! `NAGIOS_*` environment, or from a JSON object posted to a route) into [`Macros`] keyed by the
//! canonical Nagios macro names, and [`decode_macros`] turns them into one [`Alert`].
//!
//! Mapping (documented for operators in `docs/integrations/nagios.md`):
//! - `NOTIFICATIONTYPE` gives the state; Nagios spells it `PROBLEM`, `FLAPPINGSTOP`,
//!   `DOWNTIMECANCELLED`..., Icinga 2 `PROBLEM`, `FLAPPINGEND`, `DOWNTIMECANCELLED` (its
//!   `notification.type` macro) or, in its filters, `Problem`, `FlappingEnd`, `DowntimeRemoved`:
//!   all are accepted, case-insensitively.
//! - A notification is about a service when `SERVICEDESC` is set, else about the host. Empty
//!   values count as absent: Icinga 2 passes empty strings for macros that do not apply.
//! - `status` is `SERVICESTATE` (or `HOSTSTATE`), upper-cased; the summary is
//!   `STATE: host/service - first line of output` (`TYPE STATE: ...` for notifications other
//!   than problem, recovery and acknowledgement).
//! - `dedup_hint` is `host/service` or `host`: the same for every notification of one object, so
//!   a problem, its reminders, its acknowledgement and its recovery are one incident.

use std::collections::BTreeMap;

use jiff::Timestamp;
use pagerbridge_model::{Alert, AlertState, DecodeError, MonitorRef, SourceKind, parse_perfdata};
use serde_json::{Map, Value};

/// Macro values keyed by canonical Nagios macro names, without the `$`: `HOSTNAME`,
/// `SERVICEDESC`, `NOTIFICATIONTYPE`...
pub type Macros = BTreeMap<String, String>;

/// Every notification type accepted, as written in the error message; matching ignores case.
pub const NOTIFICATION_TYPES: [(&str, AlertState); 13] = [
    ("PROBLEM", AlertState::Problem),
    ("RECOVERY", AlertState::Recovery),
    ("ACKNOWLEDGEMENT", AlertState::Acknowledgement),
    ("FLAPPINGSTART", AlertState::FlappingStart),
    ("FLAPPINGSTOP", AlertState::FlappingStop),
    // Icinga 2's name for FLAPPINGSTOP.
    ("FLAPPINGEND", AlertState::FlappingStop),
    ("FLAPPINGDISABLED", AlertState::FlappingDisabled),
    ("DOWNTIMESTART", AlertState::DowntimeStart),
    ("DOWNTIMEEND", AlertState::DowntimeEnd),
    ("DOWNTIMECANCELLED", AlertState::DowntimeCancelled),
    // Icinga 2's filter name for DOWNTIMECANCELLED.
    ("DOWNTIMEREMOVED", AlertState::DowntimeCancelled),
    ("CUSTOM", AlertState::Custom),
    // Nagios' documentation spells it both ways; so do the scripts people write.
    ("ACKNOWLEDGMENT", AlertState::Acknowledgement),
];

/// Environment prefixes stripped by [`macros_from_env`]: Nagios, Naemon and Centreon Engine
/// export `NAGIOS_*` (with `enable_environment_macros=1`), Icinga 1.x `ICINGA_*`.
pub const ENV_PREFIXES: [&str; 3] = ["NAGIOS_", "ICINGA_", "NAEMON_"];

/// Macros every notification reads itself; with the ones of its kind (service or host, see
/// [`decode_macros`]) they are left out of `details.macros`, which keeps everything else given.
const ALWAYS_READ: [&str; 10] = [
    "NOTIFICATIONTYPE",
    "HOSTNAME",
    "SERVICEDESC",
    "HOSTADDRESS",
    "HOSTALIAS",
    "HOSTDISPLAYNAME",
    "SERVICEDISPLAYNAME",
    "NOTIFICATIONAUTHOR",
    "NOTIFICATIONAUTHORNAME",
    "NOTIFICATIONCOMMENT",
];

/// PagerDuty's `client` for each monitor of the family.
pub fn client_name(kind: SourceKind) -> Option<&'static str> {
    match kind {
        SourceKind::Icinga2 => Some("Icinga 2"),
        SourceKind::Nagios => Some("Nagios"),
        SourceKind::Naemon => Some("Naemon"),
        SourceKind::CentreonEngine => Some("Centreon"),
        SourceKind::Openitcockpit => Some("openITCOCKPIT"),
        _ => None,
    }
}

/// Parses a notification type as Nagios or Icinga 2 writes it.
pub fn parse_notification_type(s: &str) -> Option<AlertState> {
    let s = s.trim();
    NOTIFICATION_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, state)| *state)
}

/// The canonical form of a macro name: upper case, without surrounding `$` or whitespace, so
/// `$hostname$`, `HOSTNAME` and ` hostname ` are one macro.
pub fn canonical_macro_name(name: &str) -> String {
    name.trim().trim_matches('$').trim().to_ascii_uppercase()
}

/// The flags of `pagerbridge send` for this family and the macro each fills: `(flag, macro of a
/// service notification, macro of a host notification)`. A notification is a service's when
/// `--service` is given and not empty. `--macro NAME=VALUE` (repeatable) passes any other macro.
pub const SEND_FLAGS: [(&str, &str, &str); 13] = [
    ("--type", "NOTIFICATIONTYPE", "NOTIFICATIONTYPE"),
    ("--host", "HOSTNAME", "HOSTNAME"),
    ("--host-address", "HOSTADDRESS", "HOSTADDRESS"),
    ("--service", "SERVICEDESC", "SERVICEDESC"),
    ("--state", "SERVICESTATE", "HOSTSTATE"),
    ("--output", "SERVICEOUTPUT", "HOSTOUTPUT"),
    ("--long-output", "LONGSERVICEOUTPUT", "LONGHOSTOUTPUT"),
    ("--perfdata", "SERVICEPERFDATA", "HOSTPERFDATA"),
    ("--author", "NOTIFICATIONAUTHOR", "NOTIFICATIONAUTHOR"),
    ("--comment", "NOTIFICATIONCOMMENT", "NOTIFICATIONCOMMENT"),
    ("--problem-id", "SERVICEPROBLEMID", "HOSTPROBLEMID"),
    (
        "--last-problem-id",
        "LASTSERVICEPROBLEMID",
        "LASTHOSTPROBLEMID",
    ),
    ("--routing-key", "CONTACTPAGER", "CONTACTPAGER"),
];

/// Builds [`Macros`] from `pagerbridge send`'s flags, given in order as `(flag, value)` pairs
/// (`("--type", "PROBLEM")`, `("--macro", "HOSTALIAS=Database 1")`); see [`SEND_FLAGS`]. A named
/// flag wins over a `--macro` for the same macro; of two `--macro` for one name, the last
/// non-empty one. Empty values are kept (and ignored by [`decode_macros`]): monitors pass empty
/// strings for macros that do not apply.
pub fn macros_from_flags<'a>(
    flags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Macros, DecodeError> {
    let flags: Vec<(&str, &str)> = flags.into_iter().collect();
    let is_service = flags
        .iter()
        .any(|(f, v)| *f == "--service" && !v.trim().is_empty());
    let mut named = Macros::new();
    let mut extra = Macros::new();
    for (flag, value) in flags {
        if flag == "--macro" {
            let Some((name, v)) = value.split_once('=') else {
                return Err(DecodeError::new(
                    "--macro",
                    format!("expected NAME=VALUE, got {value:?}"),
                ));
            };
            let name = canonical_macro_name(name);
            if name.is_empty() {
                return Err(DecodeError::new(
                    "--macro",
                    format!("the macro name is empty in {value:?}"),
                ));
            }
            if !v.trim().is_empty() || !extra.contains_key(&name) {
                extra.insert(name, v.to_owned());
            }
            continue;
        }
        let Some((_, service_macro, host_macro)) = SEND_FLAGS.iter().find(|(f, _, _)| *f == flag)
        else {
            let known: Vec<&str> = SEND_FLAGS.iter().map(|(f, _, _)| *f).collect();
            return Err(DecodeError::new(
                flag,
                format!(
                    "unknown flag; expected one of {}, --macro",
                    known.join(", ")
                ),
            ));
        };
        let name = if is_service {
            service_macro
        } else {
            host_macro
        };
        named.insert((*name).to_owned(), value.to_owned());
    }
    for (name, value) in named {
        if !value.trim().is_empty() || !extra.contains_key(&name) {
            extra.insert(name, value);
        }
    }
    Ok(extra)
}

/// Collects the environment form of the macros: `NAGIOS_HOSTNAME=db1` becomes `HOSTNAME=db1`.
/// Variables without one of [`ENV_PREFIXES`] are ignored. When two prefixes give the same
/// macro, the first non-empty value wins, so a stray empty variable cannot hide a real one.
pub fn macros_from_env(env: impl IntoIterator<Item = (String, String)>) -> Macros {
    let mut out = Macros::new();
    for (key, value) in env {
        let Some(name) = ENV_PREFIXES.iter().find_map(|p| key.strip_prefix(p)) else {
            continue;
        };
        let name = canonical_macro_name(name);
        if name.is_empty() {
            continue;
        }
        match out.get(&name) {
            Some(existing) if !existing.is_empty() => {}
            _ => {
                out.insert(name, value);
            }
        }
    }
    out
}

/// Decodes a JSON object of macros (`{"NOTIFICATIONTYPE": "PROBLEM", "HOSTNAME": "db1", ...}`),
/// the form some setups post over HTTP. Values are strings; numbers and booleans are accepted
/// and written as text, `null` counts as absent; names may carry `$` and any case.
pub fn decode(kind: SourceKind, body: &[u8]) -> Result<Alert, DecodeError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| DecodeError::new("", format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(DecodeError::new(
            "",
            format!(
                "expected a JSON object of macros, got {}",
                json_type_name(&value)
            ),
        ));
    };
    let mut macros = Macros::new();
    for (key, v) in obj {
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            other => {
                return Err(DecodeError::new(
                    key,
                    format!(
                        "expected a string (macro values are text), got {}",
                        json_type_name(&other)
                    ),
                ));
            }
        };
        macros.insert(canonical_macro_name(&key), text);
    }
    decode_macros(kind, &macros)
}

/// Decodes one notification from its macros. See the module documentation for the mapping.
pub fn decode_macros(kind: SourceKind, m: &Macros) -> Result<Alert, DecodeError> {
    let client = client_name(kind).ok_or_else(|| {
        DecodeError::new(
            "source",
            format!(
                "{kind} does not notify with Nagios macros (expected icinga2, nagios, naemon, centreon_engine or openitcockpit)"
            ),
        )
    })?;
    let m = MacroView::new(m);

    let type_text = m.get("NOTIFICATIONTYPE").ok_or_else(|| {
        DecodeError::new(
            "NOTIFICATIONTYPE",
            "missing: the notification type ($NOTIFICATIONTYPE$, Icinga 2: $notification.type$) is required",
        )
    })?;
    let state = parse_notification_type(type_text).ok_or_else(|| {
        let known: Vec<&str> = NOTIFICATION_TYPES.iter().map(|(n, _)| *n).collect();
        DecodeError::new(
            "NOTIFICATIONTYPE",
            format!(
                "unknown notification type {type_text:?}; expected one of {} (any case)",
                known.join(", ")
            ),
        )
    })?;
    let notification_type = type_text.trim().to_ascii_uppercase();
    let host = m.get("HOSTNAME").ok_or_else(|| {
        DecodeError::new(
            "HOSTNAME",
            "missing: the host name ($HOSTNAME$, Icinga 2: $host.name$) is required",
        )
    })?;
    let service = m.get("SERVICEDESC");

    let (state_macro, output_macro, long_macro, perf_macro, id_macro, last_id_macro) =
        if service.is_some() {
            (
                "SERVICESTATE",
                "SERVICEOUTPUT",
                "LONGSERVICEOUTPUT",
                "SERVICEPERFDATA",
                "SERVICEPROBLEMID",
                "LASTSERVICEPROBLEMID",
            )
        } else {
            (
                "HOSTSTATE",
                "HOSTOUTPUT",
                "LONGHOSTOUTPUT",
                "HOSTPERFDATA",
                "HOSTPROBLEMID",
                "LASTHOSTPROBLEMID",
            )
        };
    let status = m.get(state_macro).map(|s| s.trim().to_ascii_uppercase());
    let output = m.get(output_macro);
    let long_output = m.get(long_macro);
    let perfdata = m.get(perf_macro);
    // Nagios writes 0 when there is no such problem (the problem id of a recovery, the last
    // problem id of a first problem): that is not an id.
    let problem_id = m.get(id_macro).filter(|id| id.trim() != "0");
    let last_problem_id = m.get(last_id_macro).filter(|id| id.trim() != "0");

    let object_name = match service {
        Some(s) => format!("{host}/{s}"),
        None => host.to_owned(),
    };
    // openITCOCKPIT names hosts and services by UUID in the core and keeps the names people
    // know in the display names: the entity (what rules match and people read) uses those,
    // the dedup hint and the monitor reference keep the UUIDs, which never change.
    let (entity_host, entity_service) = if kind == SourceKind::Openitcockpit {
        (
            m.get("HOSTDISPLAYNAME").unwrap_or(host),
            service.map(|s| m.get("SERVICEDISPLAYNAME").unwrap_or(s)),
        )
    } else {
        (host, service)
    };
    let entity_name = match entity_service {
        Some(s) => format!("{entity_host}/{s}"),
        None => entity_host.to_owned(),
    };
    let summary = summary(
        &notification_type,
        state,
        status.as_deref(),
        &entity_name,
        output,
    );

    let mut alert = Alert::new(kind, state, summary, object_name);
    alert.entity.host = Some(entity_host.to_owned());
    alert.entity.service = entity_service.map(str::to_owned);
    alert.status = status.clone();
    alert.client = Some(client.to_owned());
    alert.monitor_ref = MonitorRef::Object {
        host: host.to_owned(),
        service: service.map(str::to_owned),
        problem_id: problem_id.map(str::to_owned),
        last_problem_id: last_problem_id.map(str::to_owned),
    };
    alert.author = m
        .get("NOTIFICATIONAUTHORNAME")
        .or_else(|| m.get("NOTIFICATIONAUTHOR"))
        .map(str::to_owned);
    alert.comment = m.get("NOTIFICATIONCOMMENT").map(str::to_owned);
    let pager = m.get("CONTACTPAGER");
    alert.routing_key = pager
        .filter(|p| looks_like_routing_key(p))
        .map(|p| p.trim().to_owned());
    alert.occurred_at = notification_time(&m);
    if !matches!(state, AlertState::Recovery) {
        alert.started_at = problem_start(&m, service.is_some());
    }

    let mut d = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            d.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    };
    put("notification_type", Some(&notification_type));
    put("state", status.as_deref());
    put("output", output);
    put("long_output", long_output);
    put("problem_id", problem_id);
    put("last_problem_id", last_problem_id);
    put("host_address", m.get("HOSTADDRESS"));
    put("host_alias", m.get("HOSTALIAS"));
    put("host_display_name", m.get("HOSTDISPLAYNAME"));
    if service.is_some() {
        put("service_display_name", m.get("SERVICEDISPLAYNAME"));
        put("host_state", m.get("HOSTSTATE"));
    }
    if let Some(p) = perfdata {
        let parsed = parse_perfdata(p);
        if !parsed.is_empty() {
            d.insert("perfdata".into(), Value::Object(parsed));
        }
    }
    let read_for_kind = [
        state_macro,
        output_macro,
        long_macro,
        perf_macro,
        id_macro,
        last_id_macro,
        // Shown as `host_state` for a service; the state itself for a host.
        "HOSTSTATE",
    ];
    let mut rest = Map::new();
    for (name, value) in m.non_empty() {
        if ALWAYS_READ.contains(&name) || read_for_kind.contains(&name) {
            continue;
        }
        // A routing key is a credential: it routes, it is not shown in the incident.
        if name == "CONTACTPAGER" && alert.routing_key.is_some() {
            continue;
        }
        rest.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    if !rest.is_empty() {
        d.insert("macros".into(), Value::Object(rest));
    }
    alert.details = d;
    Ok(alert)
}

/// `CRITICAL: db1/Disk - DISK CRITICAL - free space: / 100 MB`; the notification type leads
/// for the notifications that are neither a problem, a recovery nor an acknowledgement
/// (`FLAPPINGSTART WARNING: web1/HTTP - ...`), and stands in for a missing state.
fn summary(
    notification_type: &str,
    state: AlertState,
    status: Option<&str>,
    entity: &str,
    output: Option<&str>,
) -> String {
    let head = match (state, status) {
        (
            AlertState::Problem | AlertState::Recovery | AlertState::Acknowledgement,
            Some(status),
        ) => status.to_owned(),
        (_, Some(status)) => format!("{notification_type} {status}"),
        (_, None) => notification_type.to_owned(),
    };
    let first_line = output
        .and_then(|o| o.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("");
    if first_line.is_empty() {
        format!("{head}: {entity}")
    } else {
        format!("{head}: {entity} - {first_line}")
    }
}

/// PagerDuty integration keys are 32 letters and digits; anything else in `CONTACTPAGER` is a
/// pager number or an address and is kept as a detail instead.
pub fn looks_like_routing_key(s: &str) -> bool {
    let s = s.trim();
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `TIMET` (Unix seconds, Icinga 2: `$icinga.timet$`) or, failing that, Icinga 2's
/// `LONGDATETIME` (`2014-01-03 11:23:08 +0000`). Nagios' own `LONGDATETIME` names its zone by
/// an ambiguous abbreviation and is left as text.
fn notification_time(m: &MacroView<'_>) -> Option<Timestamp> {
    m.get("TIMET").and_then(unix_seconds).or_else(|| {
        m.get("LONGDATETIME")
            .and_then(|s| Timestamp::strptime("%Y-%m-%d %H:%M:%S %z", s.trim()).ok())
    })
}

/// When the problem began: Naemon's `*PROBLEMSTART`, else the last state change.
fn problem_start(m: &MacroView<'_>, is_service: bool) -> Option<Timestamp> {
    let (start, change) = if is_service {
        ("SERVICEPROBLEMSTART", "LASTSERVICESTATECHANGE")
    } else {
        ("HOSTPROBLEMSTART", "LASTHOSTSTATECHANGE")
    };
    m.get(start)
        .and_then(unix_seconds)
        .or_else(|| m.get(change).and_then(unix_seconds))
}

/// Unix seconds, possibly with a fraction (Icinga 2 writes `1700000000.123`). Zero means
/// "never" in Nagios.
fn unix_seconds(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    let secs: f64 = s.parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0)?;
    if secs >= 253_402_300_800.0 {
        return None;
    }
    let whole = secs.trunc() as i64;
    let nanos = ((secs - secs.trunc()) * 1e9).round() as i32;
    Timestamp::new(whole, nanos.clamp(0, 999_999_999)).ok()
}

/// The macros with canonical names, empty values treated as absent.
struct MacroView<'a> {
    map: BTreeMap<String, &'a str>,
}

impl<'a> MacroView<'a> {
    fn new(m: &'a Macros) -> MacroView<'a> {
        let mut map: BTreeMap<String, &'a str> = BTreeMap::new();
        for (k, v) in m {
            let name = canonical_macro_name(k);
            if name.is_empty() {
                continue;
            }
            // Two spellings of one macro (`hostname`, `HOSTNAME`): keep the non-empty one.
            match map.get(&name) {
                Some(existing) if !existing.is_empty() => {}
                _ => {
                    map.insert(name, v.as_str());
                }
            }
        }
        MacroView { map }
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.map.get(name).copied().filter(|v| !v.trim().is_empty())
    }

    fn non_empty(&self) -> impl Iterator<Item = (&str, &'a str)> {
        self.map
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.as_str(), *v))
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
