//! The corpus of invalid manifests (`tests/invalid/`): each file starts with
//! one or more `# expect: <text>` lines, texts the refusal must contain (the
//! first is the field path, a second the rule's words), both offline
//! (`render`) and at the API server.

use std::path::PathBuf;

use super::cluster::repo_root;

/// The fewest manifests the corpus must hold.
pub const MINIMUM: usize = 60;

/// One invalid manifest.
pub struct Invalid {
    pub path: PathBuf,
    pub text: String,
    /// What the refusal must contain: the first `# expect:` line.
    pub expected: String,
    /// Every `# expect:` line (the first included).
    pub expectations: Vec<String>,
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
            let expectations: Vec<String> =
                text.lines().map_while(|l| l.strip_prefix("# expect: ")).map(String::from).collect();
            let expected = expectations
                .first()
                .unwrap_or_else(|| panic!("{}: the first line is not `# expect: ...`", path.display()))
                .clone();
            Invalid { path, text, expected, expectations }
        })
        .collect();
    assert!(corpus.len() >= MINIMUM, "the corpus holds {} manifests; at least {MINIMUM} expected", corpus.len());
    corpus
}
