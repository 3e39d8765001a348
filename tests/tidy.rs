//! Architecture invariants, checked under `cargo test` (as rust-analyzer's tidy tests do) rather
//! than by greps in CI, so that a change that breaks one fails on the machine that made it:
//!
//! - the core is sans-IO: no tokio in `converge-core`'s normal dependency tree, and no read of
//!   the OS clock or OS randomness in its sources (time and randomness are inputs);
//! - the conformance suite is a black box: `converge-conformance` depends on no converge crate,
//!   so that it can only check a store from outside;
//! - no two modules of `converge-core` import each other, directly or through others;
//! - no source file grows past `MAX_LINES` without its module documentation saying why it is one
//!   piece (ignored until the files now being split have landed).
//!
//! Every failure names the rule and what broke it: the file and line for a rule about sources,
//! the manifest and the offending package for a rule about dependencies.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `.rs` files under `dir` (relative to the repository root), build outputs left out, sorted
/// so that reports come in a stable order.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "target") {
                    continue;
                }
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(ROOT).join(dir), &mut out);
    out.sort();
    out
}

/// `path` relative to the repository root, as a report names it.
fn shown(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", shown(path)))
}

/// The packages in `package`'s dependency tree along `edges`, one `name vX.Y.Z` per line.
fn dependency_tree(package: &str, edges: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .current_dir(ROOT)
        .args(["tree", "--locked", "--offline", "--prefix", "none"])
        .args(["-p", package, "-e", edges])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

/// The packages of `tree` whose name `offends`, each with the `cargo tree -i` line that shows
/// the path to it.
fn offending_packages(tree: &str, package: &str, offends: impl Fn(&str) -> bool) -> Vec<String> {
    let names: BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| offends(name))
        .collect();
    names
        .into_iter()
        .map(|name| {
            format!("{package} depends on {name} (`cargo tree -p {package} -i {name}` shows how)")
        })
        .collect()
}

#[test]
fn the_core_has_no_tokio_in_its_normal_dependencies() {
    // The core is a sans-IO state machine that the node, the simulator and the models all drive;
    // an I/O runtime in it would tie all three to one scheduler.
    let tree = dependency_tree("converge-core", "normal");
    assert!(
        tree.starts_with("converge-core "),
        "not converge-core's tree:\n{tree}"
    );
    let problems = offending_packages(&tree, "converge-core", |name| name == "tokio");
    assert!(
        problems.is_empty(),
        "Cargo.toml: rule \"no I/O runtime in the core\" broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_conformance_suite_depends_on_no_converge_crate() {
    // The suite checks any store through its protocol; depending on the reference store would let
    // it check that store by its own definitions instead.
    let tree = dependency_tree("converge-conformance", "normal,build,dev");
    assert!(
        tree.starts_with("converge-conformance "),
        "not converge-conformance's tree:\n{tree}"
    );
    let problems = offending_packages(&tree, "converge-conformance", |name| {
        name.starts_with("converge") && name != "converge-conformance"
    });
    assert!(
        problems.is_empty(),
        "conformance/Cargo.toml: rule \"the conformance suite depends on no converge crate\" \
         broken:\n{}",
        problems.join("\n")
    );
}

/// Calls that read the OS clock or OS randomness.
const NONDETERMINISM: [&str; 5] = [
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "OsRng",
    "getrandom",
];

#[test]
fn the_core_never_reads_the_os_clock_or_os_randomness() {
    // Time and randomness are inputs of the core, so that a seed and a schedule replay a run.
    let mut problems = Vec::new();
    let files = rust_files("reference/core/src");
    assert!(files.len() > 10, "only {} core files found", files.len());
    for path in files {
        for (n, line) in read(&path).lines().enumerate() {
            for call in NONDETERMINISM.iter().filter(|c| line.contains(**c)) {
                problems.push(format!(
                    "{}:{}: `{call}`: the core takes time and randomness as inputs\n    {}",
                    shown(&path),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One module of a crate: its path below the crate root (`["replica", "quorum"]`; the root is
/// empty) and its file.
struct Module {
    path: Vec<String>,
    file: PathBuf,
}

/// The modules of the crate whose root is `src/lib.rs`, one per file.
fn modules(src: &Path) -> Vec<Module> {
    let mut out = Vec::new();
    for file in rust_files(&shown(src)) {
        let relative = file.strip_prefix(src).expect("found under src");
        let mut path: Vec<String> = relative
            .with_extension("")
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        if path.last().is_some_and(|l| l == "mod" || l == "lib") {
            path.pop();
        }
        out.push(Module { path, file });
    }
    out
}

/// A `use` declaration: its 1-based line, whether it re-exports (`pub use`, `pub(crate) use`),
/// and its tree (`super::{api::Key, codec}`).
struct Use {
    line: usize,
    public: bool,
    tree: String,
}

/// The `use` declarations of a file outside its `#[cfg(test)]` module, which by this crate's
/// convention closes the file; tests may import whatever they check.
fn uses(text: &str) -> Vec<Use> {
    let mut out = Vec::new();
    let mut current: Option<Use> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" {
            break;
        }
        if let Some(u) = current.as_mut() {
            u.tree.push(' ');
            u.tree.push_str(trimmed);
        } else {
            let (public, rest) = if let Some(rest) = trimmed.strip_prefix("pub use ") {
                (true, rest)
            } else if let Some((_, rest)) = trimmed
                .strip_prefix("pub(")
                .and_then(|r| r.split_once(") use "))
            {
                (true, rest)
            } else if let Some(rest) = trimmed.strip_prefix("use ") {
                (false, rest)
            } else {
                continue;
            };
            current = Some(Use {
                line: n + 1,
                public,
                tree: rest.to_string(),
            });
        }
        if current.as_ref().is_some_and(|u| u.tree.contains(';')) {
            let mut u = current.take().expect("checked");
            u.tree = u.tree.split(';').next().unwrap_or_default().to_string();
            out.push(u);
        }
    }
    out
}

/// The paths a use tree names: `a::{b::C, D as E, self}` gives `[a, b, C]`, `[a, D]` and `[a]`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or_default();
        let mut segments: Vec<String> = path
            .split("::")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if segments.last().is_some_and(|s| s == "self") {
            segments.pop();
        }
        return vec![segments];
    };
    let close = tree.rfind('}').unwrap_or(tree.len());
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let inner = &tree[open + 1..close];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(expand)
        .map(|rest| prefix.iter().cloned().chain(rest).collect())
        .collect()
}

/// A module's path below its crate's root, one segment per element.
type ModPath = Vec<String>;

/// A crate's module tree with the names each module imports or re-exports, so that a path such
/// as `crate::GCounter` can be followed to the module that defines it (`crdt::counter`).
struct Crate {
    modules: BTreeSet<ModPath>,
    /// (module, name) -> the full path its `use` bound the name to, written in that module.
    names: BTreeMap<(ModPath, String), ModPath>,
}

impl Crate {
    /// The module that `path`, written in module `from`, leads to; `None` for another crate's.
    fn resolve(&self, from: &[String], path: &[String], depth: usize) -> Option<Vec<String>> {
        let (mut module, rest) = match path.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &path[1..]),
            Some("self") => (from.to_vec(), &path[1..]),
            Some("super") => {
                let mut module = from.to_vec();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    module.pop();
                    rest = &rest[1..];
                }
                (module, rest)
            }
            Some(first) => {
                let child: Vec<String> = from.iter().cloned().chain([first.to_string()]).collect();
                if self.modules.contains(&child) {
                    (from.to_vec(), path)
                } else {
                    return None;
                }
            }
            None => return None,
        };
        for segment in rest {
            let child: Vec<String> = module.iter().cloned().chain([segment.clone()]).collect();
            if self.modules.contains(&child) {
                module = child;
                continue;
            }
            // An item: defined here, or bound here by a `use` that leads elsewhere.
            if depth < 8
                && let Some(bound) = self.names.get(&(module.clone(), segment.clone()))
                && let Some(target) = self.resolve(&module.clone(), bound, depth + 1)
            {
                module = target;
            }
            break;
        }
        Some(module)
    }
}

/// An import of one module by another: where it is written, and the modules it joins.
#[derive(Clone)]
struct Import {
    from: Vec<String>,
    to: Vec<String>,
    at: String,
}

/// The imports between distinct modules of the crate rooted at `src`, a module's imports from
/// its ancestors left out. Re-exports (`pub use`) are followed to the module that defines the
/// item, not counted as imports of the re-exporting module: a parent re-exports its children's
/// items without depending on them.
fn imports(src: &Path) -> Vec<Import> {
    let modules = modules(src);
    let mut krate = Crate {
        modules: modules.iter().map(|m| m.path.clone()).collect(),
        names: BTreeMap::new(),
    };
    let mut declared = Vec::new();
    for module in &modules {
        for u in uses(&read(&module.file)) {
            for path in expand(&u.tree) {
                let bound = u
                    .tree
                    .split(',')
                    .find_map(|item| {
                        let (original, alias) = item.split_once(" as ")?;
                        original
                            .trim()
                            .ends_with(path.last()?.as_str())
                            .then(|| alias.trim().trim_end_matches('}').trim().to_string())
                    })
                    .or_else(|| path.last().cloned());
                if let Some(name) = bound.filter(|n| n != "*") {
                    krate
                        .names
                        .insert((module.path.clone(), name), path.clone());
                }
                declared.push((module, u.line, u.public, path));
            }
        }
    }
    let mut out = Vec::new();
    for (module, line, public, path) in declared {
        if public {
            continue;
        }
        let Some(to) = krate.resolve(&module.path, &path, 0) else {
            continue;
        };
        // A child module is part of its parent: it sees the parent's private items and holds a
        // piece of it (an `impl` block of a type its parent declares), so its imports from an
        // ancestor are imports within one module, not between two.
        if !module.path.starts_with(&to) {
            out.push(Import {
                from: module.path.clone(),
                to,
                at: format!("{}:{line}: `use {}`", shown(&module.file), path.join("::")),
            });
        }
    }
    out
}

/// Every cycle of `imports`, one per strongly connected group of modules: the shortest circle
/// through the group's first module, each step with the line that makes it.
fn cycles(imports: &[Import]) -> Vec<Vec<Import>> {
    let mut edges: BTreeMap<&Vec<String>, Vec<&Import>> = BTreeMap::new();
    for import in imports {
        edges.entry(&import.from).or_default().push(import);
    }
    // The shortest path of imports from `start` to `goal` (breadth-first).
    let path = |start: &Vec<String>, goal: &Vec<String>| -> Option<Vec<Import>> {
        let mut came: BTreeMap<&Vec<String>, &Import> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            for import in edges.get(at).into_iter().flatten() {
                if import.to == *goal {
                    let mut steps = vec![(*import).clone()];
                    let mut back = at;
                    while back != start {
                        let step = came[back];
                        steps.push(step.clone());
                        back = &step.from;
                    }
                    steps.reverse();
                    return Some(steps);
                }
                if !came.contains_key(&import.to) && import.to != *start {
                    came.insert(&import.to, import);
                    queue.push_back(&import.to);
                }
            }
        }
        None
    };
    let mut found = Vec::new();
    let mut covered: BTreeSet<Vec<String>> = BTreeSet::new();
    for module in edges.keys() {
        if covered.contains(*module) {
            continue;
        }
        if let Some(cycle) = path(module, module) {
            covered.extend(cycle.iter().map(|i| i.from.clone()));
            found.push(cycle);
        }
    }
    found
}

fn module_name(path: &[String]) -> String {
    std::iter::once("crate")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("::")
}

/// Import circles tolerated for now, each as the check prints it: empty since the replica was
/// split into parts (the two it had, `api -> session -> codec -> api` and `keyspace -> codec ->
/// keyspace`, went when `KeyState` moved to `state` and `codec` kept only the primitives). The
/// check fails on a circle that is not listed and on a listed one that is gone, so the list only
/// shrinks.
const KNOWN_CYCLES: [&str; 0] = [];

#[test]
fn no_two_modules_of_the_core_import_each_other() {
    // A circle of imports makes its modules one piece in all but name: none can be understood,
    // tested or moved without the others.
    let src = Path::new(ROOT).join("reference/core/src");
    let imports = imports(&src);
    assert!(
        imports
            .iter()
            .any(|i| module_name(&i.from) == "crate::replica::requests"
                && module_name(&i.to) == "crate::replica::state"),
        "the import parser missed `use super::state::KeyState` in replica/requests.rs"
    );
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for cycle in cycles(&imports) {
        let circle: Vec<String> = cycle
            .iter()
            .map(|i| module_name(&i.from))
            .chain([module_name(&cycle[0].from)])
            .collect();
        let circle = circle.join(" -> ");
        if !KNOWN_CYCLES.contains(&circle.as_str()) {
            let steps: Vec<String> = cycle.iter().map(|i| format!("    {}", i.at)).collect();
            problems.push(format!(
                "rule \"no import circle in converge-core\" broken: {circle}\n{}",
                steps.join("\n")
            ));
        }
        seen.insert(circle);
    }
    for known in KNOWN_CYCLES {
        if !seen.contains(known) {
            problems.push(format!(
                "tests/tidy.rs: KNOWN_CYCLES lists `{known}`, which is gone: strike it from the \
                 list"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_import_parser_follows_re_exports_and_nested_trees() {
    // The cycle check is only as good as its parser; this pins the forms the core uses.
    assert_eq!(
        expand("super::{api::{Key, Value}, codec as c, self}"),
        [
            vec!["super", "api", "Key"],
            vec!["super", "api", "Value"],
            vec!["super", "codec"],
            vec!["super"],
        ]
    );
    let src = Path::new(ROOT).join("reference/core/src");
    let imports = imports(&src);
    let edge = |from: &str, to: &str| {
        imports
            .iter()
            .any(|i| module_name(&i.from) == from && module_name(&i.to) == to)
    };
    // `use crate::{CausalContext, ...}` reaches the module that defines it through two re-exports.
    assert!(edge("crate::crdt::orset", "crate::clock::dot"));
    // A re-export is not an import of the module that re-exports.
    assert!(!edge("crate::replica", "crate::replica::api"));
}

/// Longest a source file may be before its module documentation must say why it is one piece.
const MAX_LINES: usize = 800;

/// Whether a file's module documentation (its leading `//!` lines) says why it is one piece: it
/// must use those words, in a sentence that gives the reason.
fn says_why_it_is_one_piece(text: &str) -> bool {
    text.lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .any(|l| l.contains("one piece"))
}

#[test]
fn no_source_file_is_longer_than_800_lines_without_saying_why() {
    // A long file usually holds several ideas; one that truly is one idea says so where a reader
    // starts, so that the next person does not split it.
    let mut problems = Vec::new();
    for dir in ["reference", "conformance", "src"] {
        for path in rust_files(dir) {
            let text = read(&path);
            let lines = text.lines().count();
            if lines > MAX_LINES && !says_why_it_is_one_piece(&text) {
                problems.push(format!(
                    "{}:{}: {lines} lines, over {MAX_LINES}, and its module documentation does \
                     not say why it is one piece",
                    shown(&path),
                    MAX_LINES + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
