//! PagerDuty's limits, met by shortening rather than by losing the event: a summary over 1024
//! characters is cut on a character boundary, a dedup key over 255 is shortened to a prefix and
//! a hash of the whole key (so it stays unique and stable), and an event over 512 KB has its
//! largest details replaced by a note saying what was cut.

use pagerduty::events::{Event, MAX_DEDUP_KEY_CHARS, MAX_EVENT_BYTES, MAX_SUMMARY_CHARS};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Where cuts are recorded in `custom_details`.
pub const TRIMMED_KEY: &str = "_pagerbridge_trimmed";

/// Room left under 512 KB for what the serialisation of a trimmed value adds.
const SIZE_MARGIN: usize = 1024;

/// Cuts `s` to at most `max` characters, ending in `…` when cut.
pub fn cut_chars(s: &str, max: usize) -> Option<String> {
    if s.chars().count() <= max {
        return None;
    }
    let keep: String = s.chars().take(max.saturating_sub(1)).collect();
    Some(format!("{keep}…"))
}

/// A key over PagerDuty's 255 characters becomes its first 190 characters, `~`, and the
/// SHA-256 of the whole key: still readable, still unique, the same every time.
pub fn fit_dedup_key(key: &str) -> Option<String> {
    if key.chars().count() <= MAX_DEDUP_KEY_CHARS {
        return None;
    }
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let prefix: String = key
        .chars()
        .take(MAX_DEDUP_KEY_CHARS - 1 - hash.len())
        .collect();
    Some(format!("{prefix}~{hash}"))
}

/// Applies every limit to `event`, returning a note for each change.
pub fn enforce(event: &mut Event) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(p) = event.payload.as_mut()
        && let Some(cut) = cut_chars(&p.summary, MAX_SUMMARY_CHARS)
    {
        notes.push(format!(
            "summary cut from {} to {MAX_SUMMARY_CHARS} characters",
            p.summary.chars().count()
        ));
        p.summary = cut;
    }
    if let Some(k) = &event.dedup_key
        && let Some(fit) = fit_dedup_key(k)
    {
        notes.push(format!(
            "dedup key of {} characters shortened to a prefix and its SHA-256",
            k.chars().count()
        ));
        event.dedup_key = Some(fit);
    }
    notes.extend(trim_details(event));
    notes
}

fn size(event: &Event) -> usize {
    serde_json::to_vec(event)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// Replaces the largest values in `custom_details` with a note until the event fits, and lists
/// what was cut under [`TRIMMED_KEY`].
fn trim_details(event: &mut Event) -> Vec<String> {
    let limit = MAX_EVENT_BYTES - SIZE_MARGIN;
    if size(event) <= limit {
        return Vec::new();
    }
    let mut cut = Vec::new();
    while let Some(details) = event
        .payload
        .as_mut()
        .and_then(|p| p.custom_details.as_mut())
    {
        let mut leaves = Vec::new();
        collect_leaves(details, String::new(), &mut leaves);
        let Some((path, bytes)) = leaves
            .into_iter()
            .filter(|(p, _)| p != TRIMMED_KEY && !p.starts_with(&format!("{TRIMMED_KEY}.")))
            .max_by_key(|(_, b)| *b)
        else {
            break;
        };
        if bytes < 64 {
            // Nothing big is left to trim; the event is as small as details can make it.
            break;
        }
        replace_at(
            details,
            &path,
            json!(format!("[trimmed by pagerbridge: {bytes} bytes]")),
        );
        cut.push(json!({"path": path, "bytes": bytes}));
        if let Value::Object(o) = details {
            o.insert(TRIMMED_KEY.into(), Value::Array(cut.clone()));
        }
        if size(event) <= limit {
            break;
        }
    }
    cut.iter()
        .map(|c| {
            format!(
                "details {} ({} bytes) trimmed to fit 512 KB",
                c["path"].as_str().unwrap_or(""),
                c["bytes"]
            )
        })
        .collect()
}

/// Every value under `v` that could be cut: strings, and arrays/objects as wholes, with their
/// serialised size. Paths are dotted (`logs.3`).
fn collect_leaves(v: &Value, path: String, out: &mut Vec<(String, usize)>) {
    let bytes = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0);
    match v {
        Value::Object(o) => {
            if !path.is_empty() {
                out.push((path.clone(), bytes));
            }
            for (k, child) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                collect_leaves(child, p, out);
            }
        }
        Value::Array(a) => {
            out.push((path.clone(), bytes));
            for (i, child) in a.iter().enumerate() {
                collect_leaves(child, format!("{path}.{i}"), out);
            }
        }
        Value::String(_) => out.push((path, bytes)),
        _ => {}
    }
}

fn replace_at(root: &mut Value, path: &str, with: Value) {
    let mut cur = root;
    let segs: Vec<&str> = path.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i == segs.len() - 1;
        cur = match cur {
            Value::Object(o) => {
                if last {
                    o.insert((*seg).to_owned(), with);
                    return;
                }
                match o.get_mut(*seg) {
                    Some(v) => v,
                    None => return,
                }
            }
            Value::Array(a) => {
                let Some(idx) = seg.parse::<usize>().ok().filter(|i| *i < a.len()) else {
                    return;
                };
                if last {
                    a[idx] = with;
                    return;
                }
                &mut a[idx]
            }
            _ => return,
        };
    }
}

/// Details as an object (PagerDuty's custom_details), whatever they were.
pub fn as_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        other => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagerduty::events::{Severity, validate_event};

    const RK: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn summaries_are_cut_on_character_boundaries() {
        let mut ev = Event::trigger(RK, "é".repeat(2000), "h", Severity::Info);
        let notes = enforce(&mut ev);
        let s = &ev.payload.as_ref().unwrap().summary;
        assert_eq!(s.chars().count(), 1024);
        assert!(s.ends_with('…'));
        assert_eq!(notes.len(), 1);
        assert!(validate_event(&serde_json::to_vec(&ev).unwrap()).is_ok());
    }

    #[test]
    fn long_dedup_keys_become_a_stable_unique_prefix_and_hash() {
        let long_a = format!("{}a", "x".repeat(400));
        let long_b = format!("{}b", "x".repeat(400));
        let a = fit_dedup_key(&long_a).unwrap();
        assert_eq!(a.chars().count(), 255);
        assert_eq!(fit_dedup_key(&long_a).unwrap(), a, "stable");
        assert_ne!(fit_dedup_key(&long_b).unwrap(), a, "unique");
        assert!(a.starts_with("xxxxx"));
        assert_eq!(fit_dedup_key("short"), None);
    }

    #[test]
    fn oversized_details_are_trimmed_largest_first_with_a_note() {
        let mut ev = Event::trigger(RK, "s", "h", Severity::Info);
        ev.payload.as_mut().unwrap().custom_details = Some(json!({
            "small": "keep me",
            "logs": ["x".repeat(300_000), "y".repeat(10)],
            "dump": "z".repeat(400_000),
            "n": 42,
        }));
        let notes = enforce(&mut ev);
        let bytes = serde_json::to_vec(&ev).unwrap();
        assert!(bytes.len() <= MAX_EVENT_BYTES);
        assert!(validate_event(&bytes).is_ok());
        let d = ev
            .payload
            .as_ref()
            .unwrap()
            .custom_details
            .as_ref()
            .unwrap();
        assert_eq!(d["small"], "keep me");
        assert_eq!(d["n"], 42);
        assert!(
            d["dump"]
                .as_str()
                .unwrap()
                .starts_with("[trimmed by pagerbridge: 400002 bytes]")
        );
        assert_eq!(d[TRIMMED_KEY][0]["path"], "dump", "largest first");
        assert_eq!(notes.len(), d[TRIMMED_KEY].as_array().unwrap().len());
    }
}
