//! Credentials of more than one part (Twilio's SID and secret, Datadog's API
//! and application keys, Trello's key and token). The vault keeps them as one
//! secret, a JSON object of part name to value, so every store, redaction and
//! CI path that handles one API key handles them unchanged; only login (which
//! asks each part) and injection (which places each part) look inside.

use super::def::{ApiKeyDef, KeyPart};
use std::collections::BTreeMap;

/// The stored form of a multi-part credential.
pub fn encode(values: &BTreeMap<String, String>) -> String {
    serde_json::to_string(values).expect("a string map serializes")
}

/// Each part of `k` with its value. A single-key definition yields its one
/// part with `stored` as is; a multi-part one decodes the JSON object. The
/// error names the missing part, never a value.
pub fn decode(k: &ApiKeyDef, stored: &str) -> Result<Vec<(KeyPart, String)>, String> {
    let parts = k.effective_parts();
    if k.parts.is_empty() {
        return Ok(parts.into_iter().map(|p| (p, stored.to_owned())).collect());
    }
    let mut map: BTreeMap<String, String> =
        serde_json::from_str(stored).map_err(|_| "the stored credential is not a multi-part credential; log in again".to_owned())?;
    parts
        .into_iter()
        .map(|p| match map.remove(&p.name) {
            Some(v) => Ok((p, v)),
            None => Err(format!("the stored credential has no {:?} part; log in again", p.name)),
        })
        .collect()
}

/// Check one value against its part's rules; the message shows the hint, never the value.
pub fn check(part: &KeyPart, title: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("no {title} {} given", part.prompt));
    }
    if value.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("the {title} {} contains spaces or control characters", part.prompt));
    }
    if let Some(pattern) = &part.key_pattern {
        let re = regex_lite::Regex::new(pattern).map_err(|e| format!("invalid key_pattern: {e}"))?;
        if !re.is_match(value) {
            let hint = part.key_pattern_hint.clone().unwrap_or_else(|| format!("expected a value matching {pattern}"));
            return Err(format!("that does not look like {} {}: {hint}", crate::ui::with_article(title), part.prompt));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ApiKeyDef {
        let json = r#"{"parts":[{"name":"sid","prompt":"Account SID","location":"basic","key_pattern":"^AC[0-9a-f]{32}$"},
            {"name":"token","prompt":"Auth token","location":"basic","basic_position":"password"}]}"#;
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn multi_part_credentials_round_trip_and_name_what_is_missing() {
        let k = def();
        let stored = encode(&BTreeMap::from([("sid".to_owned(), "AC1".to_owned()), ("token".to_owned(), "t0p".to_owned())]));
        let parts = decode(&k, &stored).unwrap();
        assert_eq!(parts.iter().map(|(p, v)| (p.name.as_str(), v.as_str())).collect::<Vec<_>>(), [("sid", "AC1"), ("token", "t0p")]);
        let err = decode(&k, r#"{"sid":"AC1"}"#).unwrap_err();
        assert!(err.contains("\"token\"") && !err.contains("AC1"), "{err}");
        assert!(decode(&k, "plain-key").is_err());
    }

    #[test]
    fn values_are_checked_without_being_echoed() {
        let k = def();
        let err = check(&k.parts[0], "Twilio", "secret-looking-value").unwrap_err();
        assert!(!err.contains("secret-looking-value"), "{err}");
        assert!(check(&k.parts[0], "Twilio", &format!("AC{}", "0".repeat(32))).is_ok());
        assert!(check(&k.parts[1], "Twilio", "has space").is_err());
    }
}
