//! `docs/spec.md` stays honest: every claim names at least one check, every test function it
//! names exists, and every claim ID the code cites exists in the spec.
//!
//! A claim is a list item starting `- **ID Title.**` with an ID like `CLK-2` or `REPL-5`. Inside
//! it, a backticked snake_case name with at least two underscores is taken as a check
//! (`compare_covers_the_four_relations`) and must be a `#[test]` function somewhere in the
//! workspace: a helper or a library function is not a check, so a claim that names one is
//! checked by nothing it names. Every claim must name at least one such test; a backticked path
//! must exist, but naming a file does not count as naming a check, since a file's tests may
//! cover other claims and not this one. (Prose names a library function by its path,
//! `Replica::start_anti_entropy`, which is not taken as a check.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Folders whose Rust sources define checks or cite claims.
const SOURCES: [&str; 7] = [
    "src",
    "tests",
    "reference",
    "conformance",
    "models",
    "mutants",
    "benches",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for dir in SOURCES {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    files
        .into_iter()
        .filter_map(|f| Some((f.clone(), std::fs::read_to_string(&f).ok()?)))
        .collect()
}

/// Every test function of the sources: a `fn NAME` whose attributes include `#[test]` or
/// `#[tokio::test]` (with or without arguments; a table row of a test-generating macro is
/// written the same way). Helpers, and functions that are only called by tests, are not checks.
fn test_functions(sources: &[(PathBuf, String)]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, text) in sources {
        for piece in text.split("#[test]").skip(1) {
            if let Some(name) = function_after_attributes(piece) {
                names.insert(name);
            }
        }
        for piece in text.split("#[tokio::test").skip(1) {
            // `]` or `(flavor = ...)]`: what follows the attribute's closing bracket.
            let after = piece.split_once(']').map_or("", |(_, rest)| rest);
            if let Some(name) = function_after_attributes(after) {
                names.insert(name);
            }
        }
    }
    names
}

/// The name of the function that `text` declares after any further attributes and comments, if
/// that is what comes next.
fn function_after_attributes(mut text: &str) -> Option<String> {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("#[") {
            // An attribute, which may hold brackets and span lines (`#[ignore = "..."]`).
            let mut depth = 1;
            let end = rest.char_indices().find_map(|(i, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })?;
            text = &rest[end + 1..];
        } else if text.starts_with("//") {
            text = text.split_once('\n').map_or("", |(_, rest)| rest);
        } else {
            break;
        }
    }
    for qualifier in ["pub ", "async "] {
        text = text.strip_prefix(qualifier).unwrap_or(text);
    }
    let name: String = text
        .strip_prefix("fn ")?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Whether `word` looks like a claim ID: capitals, a dash, digits.
fn is_id(word: &str) -> bool {
    let Some((prefix, number)) = word.split_once('-') else {
        return false;
    };
    !prefix.is_empty()
        && prefix.chars().all(|c| c.is_ascii_uppercase())
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// The spec's claims: (ID, the text of its list item).
fn claims(spec: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in spec.lines() {
        if let Some(rest) = line.strip_prefix("- **") {
            let id = rest.split_whitespace().next().unwrap_or_default();
            if is_id(id) {
                out.push((id.to_string(), line.to_string()));
                continue;
            }
        }
        // Continuation lines of the current item are indented; anything else ends it.
        if let Some(last) = out.last_mut()
            && line.starts_with("  ")
        {
            last.1.push('\n');
            last.1.push_str(line);
        } else if !line.trim().is_empty() {
            out.push((String::new(), String::new()));
        }
    }
    out.retain(|(id, _)| !id.is_empty());
    out
}

fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn looks_like_test_name(word: &str) -> bool {
    word.matches('_').count() >= 2
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn every_claim_names_checks_that_exist() {
    let spec = std::fs::read_to_string(Path::new(ROOT).join("docs/spec.md")).expect("spec");
    let sources = sources();
    let tests = test_functions(&sources);
    assert!(
        tests.contains("every_claim_names_checks_that_exist"),
        "the test parser missed this very test"
    );
    let claims = claims(&spec);
    assert!(claims.len() >= 30, "only {} claims parsed", claims.len());
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (id, text) in &claims {
        if !seen.insert(id.clone()) {
            problems.push(format!("{id} is defined twice"));
        }
        let mut named = 0;
        for word in backticked(text) {
            if looks_like_test_name(word) {
                named += 1;
                if !tests.contains(word) {
                    problems.push(format!(
                        "{id} names `{word}`, which is not a #[test] function"
                    ));
                }
            } else if word.contains('/')
                && word.ends_with(".rs")
                && !Path::new(ROOT).join(word).exists()
            {
                problems.push(format!(
                    "{id} names the file `{word}`, which does not exist"
                ));
            }
        }
        if named == 0 {
            problems.push(format!("{id} names no #[test] function as its check"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/spec.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_claim_id_the_code_cites_is_in_the_spec() {
    let spec = std::fs::read_to_string(Path::new(ROOT).join("docs/spec.md")).expect("spec");
    let ids: BTreeSet<String> = claims(&spec).into_iter().map(|(id, _)| id).collect();
    let mut unknown = Vec::new();
    for (path, text) in sources() {
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let known_prefix = ["CLK-", "CRDT-", "WIRE-", "CERT-", "REPL-", "MODEL-"]
                .iter()
                .any(|p| word.starts_with(p));
            if known_prefix && is_id(word) && !ids.contains(word) {
                unknown.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "claim IDs cited in code but missing from docs/spec.md:\n{}",
        unknown.join("\n")
    );
}

/// The text of the spec's `## Models` section.
fn models_section(spec: &str) -> &str {
    let start = spec.find("\n## Models").unwrap_or(spec.len());
    let rest = &spec[start..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[test]
fn every_model_of_the_catalogue_is_in_the_spec_and_every_model_named_there_exists() {
    let spec = std::fs::read_to_string(Path::new(ROOT).join("docs/spec.md")).expect("spec");
    let section = models_section(&spec);
    assert!(section.contains("MODEL-1"), "no `## Models` section found");
    let named: BTreeSet<&str> = backticked(section).into_iter().collect();
    let mut problems = Vec::new();
    for entry in converge_models::catalogue() {
        if !named.contains(entry.name) {
            problems.push(format!("model `{}` is not named in § Models", entry.name));
        }
    }
    // Names of the catalogue's form: lowercase words joined by dashes (`global-quorum`). Single
    // words are not taken as model names, since the section also backticks types and paths,
    // nor are the crates' names (`converge-core`).
    for word in named {
        let model_like = word.contains('-')
            && !word.starts_with('-')
            && !word.starts_with("converge-")
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if model_like && converge_models::find(word).is_none() {
            problems.push(format!(
                "§ Models names `{word}`, which is not in the catalogue"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/spec.md:\n{}",
        problems.join("\n")
    );
}
