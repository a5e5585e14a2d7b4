//! Embeds every `providers/*.json` into the binary so a fresh install needs no data files.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("providers/ directory")
        .map(|e| e.expect("readable providers/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out =
        String::from("/// Bundled provider files: (name, JSON text), sorted by name.\npub static BUNDLED: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let stem = f.file_stem().unwrap().to_str().expect("UTF-8 provider file name");
        writeln!(out, "    ({stem:?}, include_str!({:?})),", f.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("bundled_providers.rs");
    std::fs::write(dest, out).expect("write bundled_providers.rs");
}
