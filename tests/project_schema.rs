//! `schema/authsome.schema.json` agrees with the loader: every example and the
//! `init` starter validate and load; files the loader rejects, the schema rejects.

use crate::common::project::repo_root;
use authsome::paths::Home;
use authsome::project::Project;
use authsome::providers::Registry;
use std::path::{Path, PathBuf};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_root().join("schema/authsome.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).expect("the schema is a valid 2020-12 schema")
}

fn as_json(toml_text: &str) -> serde_json::Value {
    toml::from_str(toml_text).expect("valid TOML")
}

fn schema_errors(v: &jsonschema::Validator, toml_text: &str) -> Vec<String> {
    v.iter_errors(&as_json(toml_text)).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

fn registry() -> Registry {
    Registry::load(&Home::at("/nonexistent-authsome-home", "default")).unwrap()
}

fn examples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().join("authsome.toml"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_example_validates_against_the_schema_and_loads() {
    let v = validator();
    let files = examples();
    assert!(files.len() >= 3, "expected at least three examples, found {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with("#:schema "), "{} lacks the #:schema reference", f.display());
        let errors = schema_errors(&v, &text);
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
        Project::load(&f, &mut registry()).unwrap_or_else(|e| panic!("{}: {}", f.display(), e.message));
        let readme = f.with_file_name("README.md");
        assert!(readme.is_file(), "{} has no README", f.parent().unwrap().display());
    }
}

#[test]
fn the_init_starter_validates_and_loads() {
    let v = validator();
    for found in [vec![], vec![("openai".to_owned(), "OPENAI_API_KEY".to_owned())]] {
        let text = authsome::cli::project::starter(&found);
        assert!(schema_errors(&v, &text).is_empty(), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("authsome.toml");
        std::fs::write(&f, &text).unwrap();
        let p = Project::load(&f, &mut registry()).unwrap();
        assert_eq!(p.requirements.len(), found.len());
    }
}

#[test]
fn the_schema_offers_every_bundled_provider_for_completion() {
    let text = std::fs::read_to_string(repo_root().join("schema/authsome.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listed = schema["properties"]["providers"]["properties"].as_object().unwrap();
    for (name, _) in authsome::providers::bundled_files() {
        assert!(listed.contains_key(*name), "schema does not list bundled provider {name}");
    }
    assert_eq!(listed.len(), authsome::providers::bundled_files().len());
}

#[test]
fn files_the_loader_rejects_the_schema_rejects_too() {
    let v = validator();
    let bad = [
        "[providers.github]\nscope = [\"repo\"]\n",
        "[providers.github]\nscopes = \"repo\"\n",
        "[providers.github]\nconnection = \"Work Account\"\n",
        "[providers.github]\nscopes = [\"repo read\"]\n",
        "[providers]\ngithub = false\n",
        "[providers]\ngithub = []\n",
        "[proxy]\nundeclared_hosts = \"block\"\n",
        "[run]\ncommand = \"\"\n",
        "[run]\ncommand = []\n",
        "[run]\ncommand = 42\n",
        "[run.env]\nHTTPS_PROXY = \"http://evil\"\n",
        "[run.env]\n\"NOT-A-VAR\" = \"x\"\n",
        "[providers.openai]\nexport = [\"SSL_CERT_FILE\"]\n",
        "[providers.openai]\nsecret_env = \"1BAD\"\n",
        "[definitions]\nAcme = \"acme.json\"\n",
        "[definitions]\nacme = \"/dev/stdin\"\n",
        "[definitions]\nacme = \"../elsewhere/acme.json\"\n",
        "[definitions]\nacme = \"defs/../../acme.json\"\n",
        "colour = \"blue\"\n",
    ];
    for text in bad {
        assert!(!schema_errors(&v, text).is_empty(), "schema accepted:\n{text}");
        let err = authsome::project::config::parse(text, Path::new("/p/authsome.toml"), &mut registry())
            .expect_err(&format!("loader accepted:\n{text}"));
        assert_eq!(err.code, 2, "{text}");
        assert!(err.message.contains("authsome.toml:"), "{}", err.message);
    }
    let good = [
        "[providers]\ngithub = true\n",
        "[[providers.github]]\n[[providers.github]]\nconnection = \"work\"\n",
        "[run]\ncommand = [\"python3\", \"-c\", \"print(1)\"]\nenv = { A = \"1\" }\n",
        "[proxy]\nundeclared_hosts = \"deny\"\n",
    ];
    for text in good {
        assert!(schema_errors(&v, text).is_empty(), "schema rejected:\n{text}: {:?}", schema_errors(&v, text));
        authsome::project::config::parse(text, Path::new("/p/authsome.toml"), &mut registry()).unwrap();
    }
}
