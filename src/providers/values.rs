//! Per-connection values (`connection_values`): gathered at login from
//! `--value name=VALUE`, the definition's default, or a question; checked
//! (one host-name label, the definition's pattern) before anything is stored.

use super::def::{ConnectionValueDef, ProviderDef};
use std::collections::BTreeMap;

/// Every declared value of `def`: from `given` (`name=value` strings), else
/// the default, else `ask(name, definition)`. Undeclared names are errors.
pub fn resolve(
    def: &ProviderDef,
    given: &[String],
    ask: &mut dyn FnMut(&str, &ConnectionValueDef) -> Result<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut supplied = BTreeMap::new();
    for g in given {
        let (name, value) = g.split_once('=').ok_or_else(|| format!("--value {g:?} must be NAME=VALUE"))?;
        if !def.connection_values.contains_key(name) {
            let known: Vec<&str> = def.connection_values.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            return Err(format!("{} has no login value {name:?} (it takes: {known})", def.title()));
        }
        supplied.insert(name.to_owned(), value.trim().to_owned());
    }
    let mut out = BTreeMap::new();
    for (name, spec) in &def.connection_values {
        let value = match supplied.remove(name).or_else(|| spec.default.clone()) {
            Some(v) => v,
            None => ask(name, spec)?.trim().to_owned(),
        };
        spec.check(name, &value)?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> ProviderDef {
        crate::providers::parse(
            r#"{"name":"shop","auth_type":"api_key","flow":"api_key","api_url":"{shop}.myshopify.com",
            "connection_values":{"shop":{"prompt":"Shop","pattern":"^[a-z0-9-]+$"}},"api_key":{"header_name":"X-Shopify-Access-Token"}}"#,
            "shop.json",
        )
        .unwrap()
    }

    #[test]
    fn values_come_from_flags_then_questions_and_must_be_one_label() {
        let def = shop();
        let mut never = |_: &str, _: &ConnectionValueDef| -> Result<String, String> { panic!("asked") };
        assert_eq!(resolve(&def, &["shop=acme".into()], &mut never).unwrap()["shop"], "acme");
        let mut answer = |_: &str, _: &ConnectionValueDef| Ok("asked-shop".to_owned());
        assert_eq!(resolve(&def, &[], &mut answer).unwrap()["shop"], "asked-shop");
        for evil in ["evil.com/x", "a.evil.com", "evil.com#", "-x", ""] {
            assert!(resolve(&def, &[format!("shop={evil}")], &mut never).is_err(), "{evil:?} accepted");
        }
        assert!(resolve(&def, &["region=x".into()], &mut never).unwrap_err().contains("takes: shop"));
    }

    #[test]
    fn bound_hosts_follow_the_values() {
        let def = shop();
        let values = BTreeMap::from([("shop".to_owned(), "acme".to_owned())]);
        assert_eq!(def.bind("{shop}.myshopify.com", None, &values).as_deref(), Some("acme.myshopify.com"));
        assert_eq!(def.bind("{shop}.myshopify.com", None, &BTreeMap::new()), None);
    }
}
