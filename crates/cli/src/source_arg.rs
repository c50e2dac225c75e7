//! `--source` of `send` and `route test`: a configured source by name, or a kind.

use pagerbridge_config::Config;
use pagerbridge_ingest::Decoder;
use pagerbridge_model::SourceKind;

/// The decoder `--source` names, the label the outbox records as the events' origin, and the
/// source's name for the way back (the `[[sources]]` name, or the kind).
/// A `[[sources]]` entry of that name wins over a kind (its options and mapping apply);
/// otherwise it is a kind with its defaults.
pub fn decoder(config: &Config, source: &str) -> Result<(Decoder, String, String), String> {
    if let Some(s) = config.sources.iter().find(|s| s.name == source) {
        let decoder = s.decoder().map_err(|e| format!("source {}: {e}", s.name))?;
        return Ok((decoder, format!("source {}", s.name), s.name.clone()));
    }
    let Some(kind) = SourceKind::parse(source) else {
        let kinds: Vec<&str> = SourceKind::ALL
            .iter()
            .filter(|k| **k != SourceKind::Pagerduty)
            .map(|k| k.as_str())
            .collect();
        let mut message = format!(
            "--source: unknown source {source:?}; expected a kind ({})",
            kinds.join(", ")
        );
        let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        if names.is_empty() {
            message.push_str(" or the name of a [[sources]] entry of the configuration");
        } else {
            message.push_str(&format!(" or a configured source ({})", names.join(", ")));
        }
        return Err(message);
    };
    let decoder = Decoder::build(kind, None, None).map_err(|e| {
        if e.field == "mapping" {
            format!(
                "--source {source}: {}; name a [[sources]] entry that has one",
                e.message
            )
        } else {
            format!("--source {source}: {}", e.message)
        }
    })?;
    Ok((
        decoder,
        format!("send {}", kind.as_str()),
        kind.as_str().to_owned(),
    ))
}
