//! The corpus of invalid manifests (`tests/invalid/`): each file starts with
//! `# expect: <text>`, a text the refusal must contain (the field path, or the
//! rule's message), both offline (`render`) and at the API server.

use std::path::PathBuf;

use super::cluster::repo_root;

/// The fewest manifests the corpus must hold.
pub const MINIMUM: usize = 20;

/// One invalid manifest.
pub struct Invalid {
    pub path: PathBuf,
    pub text: String,
    /// What the refusal must contain.
    pub expected: String,
}

/// Every manifest of `tests/invalid/`, sorted by name; panics on a file
/// without its `# expect:` line, or when fewer than [`MINIMUM`] are found.
pub fn invalid_manifests() -> Vec<Invalid> {
    let dir = repo_root().join("tests/invalid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable entry").path())
        .collect();
    paths.sort();
    let corpus: Vec<Invalid> = paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let expected = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{}: the first line is not `# expect: ...`", path.display()))
                .to_string();
            Invalid { path, text, expected }
        })
        .collect();
    assert!(corpus.len() >= MINIMUM, "the corpus holds {} manifests; at least {MINIMUM} expected", corpus.len());
    corpus
}
