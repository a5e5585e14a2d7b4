//! Every bundled provider file, and every `inspect` output, validates against
//! `schema/provider.schema.json` with a real JSON Schema 2020-12 validator; and
//! files the loader rejects are rejected by the schema too, so editors and
//! authsome agree.

use serde_json::{json, Value};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(include_str!("../schema/provider.schema.json")).unwrap();
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).expect("schema compiles")
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

#[test]
fn every_bundled_file_validates() {
    let v = validator();
    let files = authsome::providers::bundled_files();
    assert!(files.len() >= 130, "{} bundled providers", files.len());
    for (name, text) in files {
        let instance: Value = serde_json::from_str(text).unwrap();
        let errs = errors(&v, &instance);
        assert!(errs.is_empty(), "{name}.json: {errs:?}");
        assert_eq!(instance["name"], json!(name), "file name and provider name differ");
    }
}

#[test]
fn inspect_output_round_trips_and_validates() {
    let v = validator();
    for (name, text) in authsome::providers::bundled_files() {
        let def = authsome::providers::parse(text, name).unwrap();
        let out = serde_json::to_value(&def).unwrap();
        assert!(errors(&v, &out).is_empty(), "{name}: {:?}", errors(&v, &out));
        let again = authsome::providers::parse(&serde_json::to_string_pretty(&out).unwrap(), name).unwrap();
        assert_eq!(again, def, "{name} does not round-trip");
    }
}

fn base() -> Value {
    json!({
        "name": "acme",
        "auth_type": "api_key",
        "flow": "api_key",
        "api_url": "api.acme.test",
        "api_key": {"header_name": "Authorization", "header_prefix": "Bearer"},
        "export": {"ACME_API_KEY": "API_KEY"}
    })
}

#[test]
fn schema_and_loader_agree_on_bad_files() {
    let v = validator();
    assert!(errors(&v, &base()).is_empty());
    authsome::providers::parse(&base().to_string(), "acme.json").unwrap();
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut c = base();
    c["colour"] = json!("blue");
    cases.push(("unknown field", c));
    let mut c = base();
    c["auth_type"] = json!("password");
    cases.push(("bad auth_type", c));
    let mut c = base();
    c["flow"] = json!("pkce");
    cases.push(("flow does not fit auth_type", c));
    let mut c = base();
    c["api_key"]["location"] = json!("query");
    cases.push(("query without query_param", c));
    let mut c = base();
    c["export"] = json!({"ACME_API_KEY": "ACCESS_TOKEN"});
    cases.push(("api key provider exporting an access token", c));
    let mut c = base();
    c["name"] = json!("Acme");
    cases.push(("upper-case name", c));
    let mut c = base();
    c.as_object_mut().unwrap().remove("api_key");
    cases.push(("api_key provider without api_key", c));
    cases.push((
        "oauth endpoint over plain http",
        json!({
            "name": "acme", "auth_type": "oauth2", "flow": "pkce", "api_url": "api.acme.test",
            "oauth": {"authorization_url": "http://acme.test/authorize", "token_url": "https://acme.test/token"}
        }),
    ));
    cases.push((
        "device flow without device endpoint",
        json!({
            "name": "acme", "auth_type": "oauth2", "flow": "device_code", "api_url": "api.acme.test",
            "oauth": {"token_url": "https://acme.test/token"}
        }),
    ));
    let mut c = base();
    c["category"] = json!("toys");
    cases.push(("unknown category", c));
    let mut c = base();
    c["api_key"] = json!({"parts": [{"name": "a", "prompt": "A", "location": "query"}, {"name": "b", "prompt": "B"}]});
    cases.push(("query part without query_param", c));
    let mut c = base();
    c["api_key"] = json!({"parts": [{"name": "a", "prompt": "A"}]});
    cases.push(("a single part", c));
    let mut c = base();
    c["connection_values"] = json!({"base_url": {"prompt": "x"}});
    cases.push(("a login value named base_url", c));
    let mut c = base();
    c["connection_values"] = json!({"shop": {"prompt": "Shop", "default": "a.evil.test"}});
    cases.push(("a default that is not one label", c));
    cases.push((
        "an authorize parameter authsome sets itself",
        json!({
            "name": "acme", "auth_type": "oauth2", "flow": "pkce", "api_url": "api.acme.test",
            "oauth": {"authorization_url": "https://acme.test/authorize", "token_url": "https://acme.test/token",
                      "authorization_params": {"redirect_uri": "https://evil.test/"}}
        }),
    ));
    cases.push((
        "an unknown client authentication method",
        json!({
            "name": "acme", "auth_type": "oauth2", "flow": "pkce", "api_url": "api.acme.test",
            "oauth": {"authorization_url": "https://acme.test/authorize", "token_url": "https://acme.test/token",
                      "authorization_method": "jwt"}
        }),
    ));
    let mut c = base();
    c["api_url"] = json!(["api.acme.test", "{base_url}/api/"]);
    cases.push(("{base_url} in api_url without oauth.base_url", c));
    cases.push((
        "{base_url} in the middle of an api_url entry",
        json!({
            "name": "acme", "auth_type": "oauth2", "flow": "pkce", "api_url": "api.{base_url}",
            "oauth": {"authorization_url": "https://acme.test/authorize", "token_url": "https://acme.test/token", "base_url": "https://acme.test"}
        }),
    ));
    for (what, instance) in cases {
        assert!(!errors(&v, &instance).is_empty(), "schema accepted: {what}");
        let err = authsome::providers::parse(&serde_json::to_string_pretty(&instance).unwrap(), "acme.json")
            .expect_err(&format!("loader accepted: {what}"));
        assert_eq!(err.code, 2, "{what}");
        assert!(err.message.starts_with("acme.json:"), "{what}: {}", err.message);
    }
}

#[test]
fn the_three_special_providers_are_expressed_correctly() {
    let get = |n: &str| {
        let (_, text) = authsome::providers::bundled_files().iter().find(|(name, _)| *name == n).unwrap();
        authsome::providers::parse(text, n).unwrap()
    };
    let ashby = get("ashby").api_key.unwrap();
    assert_eq!(ashby.location, authsome::providers::KeyLocation::Basic);
    assert_eq!(ashby.basic_position, authsome::providers::def::BasicPosition::Username);
    let semrush = get("semrush").api_key.unwrap();
    assert_eq!(semrush.location, authsome::providers::KeyLocation::Query);
    assert_eq!(semrush.query_param.as_deref(), Some("key"));
    let mailchimp = get("mailchimp");
    let hosts: Vec<_> = mailchimp.api_url.entries().iter().map(|e| authsome::providers::HostPattern::parse(e).unwrap()).collect();
    assert!(hosts.iter().any(|h| h.matches_host("us21.api.mailchimp.com", 443)));
    assert!(!hosts.iter().any(|h| h.matches_host("api.mailchimp.com.evil.test", 443)));
}
