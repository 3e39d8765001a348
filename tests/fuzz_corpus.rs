//! Replays the committed fuzz corpora on stable, so every `cargo test` re-checks what the fuzzers
//! found interesting: each file of `fuzz/corpus/TARGET/` and of `fuzz/regressions/TARGET/` (saved
//! crashes, once fixed) goes through the target's body in `converge::fuzzing`.
//!
//! Growing a corpus: `scripts/fuzz.sh TARGET [SECONDS]`, then `cargo +nightly fuzz cmin TARGET`.

use std::panic::{self, AssertUnwindSafe};

// The node's decoder targets keep their bodies beside the fuzz targets (converge-node is not a
// dependency of `converge::fuzzing`'s core-only bodies); both drivers include the same file.
#[path = "../fuzz/bodies/peer_frame.rs"]
mod peer_frame_body;
#[path = "../fuzz/bodies/resp.rs"]
mod resp_body;
#[path = "../fuzz/bodies/split.rs"]
mod split;
use std::path::{Path, PathBuf};

/// Replays every file of the target's corpus and regressions through `body`, and fails listing
/// each file that panicked, or if fewer than `min_files` were found (a lost corpus).
fn replay(target: &str, body: fn(&[u8]), min_files: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = root.join("corpus").join(target);
    let mut files = files_in(&corpus).unwrap_or_else(|e| {
        panic!(
            "cannot read the {target} corpus at {}: {e}",
            corpus.display()
        )
    });
    let regressions = root.join("regressions").join(target);
    if regressions.exists() {
        files.extend(files_in(&regressions).unwrap_or_else(|e| {
            panic!(
                "cannot read the {target} regressions at {}: {e}",
                regressions.display()
            )
        }));
    }
    assert!(
        files.len() >= min_files,
        "only {} inputs for fuzz target {target} (at least {min_files} expected): was the corpus \
         at {} deleted? Regrow it with `scripts/fuzz.sh {target}`",
        files.len(),
        corpus.display()
    );

    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file)
            .unwrap_or_else(|e| panic!("cannot read corpus file {}: {e}", file.display()));
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic payload)");
            let relative = file
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(file);
            failures.push(format!(
                "{}\n  reproduce: cargo +nightly fuzz run {target} {}\n  {message}",
                relative.display(),
                relative.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs of fuzz target {target} fail:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// The regular files of `dir`, sorted so failures list in a stable order.
fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

// The minimum counts sit well below what minimizing the committed corpora gives (merge_laws: 250
// files, of which ~40 already cover every edge; decode: ~300) and far above zero, so a lost or
// truncated corpus fails here instead of silently testing nothing. resp: ~1,300 files after
// `cmin` (12.5 minutes of fuzzing, 2M runs); peer_frame: ~80 (3 minutes, 2.9M runs).

#[test]
fn merge_laws_corpus_replays() {
    replay("merge_laws", converge::fuzzing::merge_laws, 30);
}

#[test]
fn decode_corpus_replays() {
    replay("decode", converge::fuzzing::decode, 100);
}

#[test]
fn replica_msg_corpus_replays() {
    replay("replica_msg", converge::fuzzing::replica_msg, 100);
}

#[test]
fn resp_corpus_replays() {
    replay("resp", resp_body::resp, 500);
}

#[test]
fn peer_frame_corpus_replays() {
    replay("peer_frame", peer_frame_body::peer_frame, 40);
}
