//! Offline tests of the CRD, `render` and its validation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};

use harness::cluster::repo_root;
use harness::corpus::invalid_manifests;
use webcluster::render;

fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Compares `actual` with a checked-in file; `UPDATE_GOLDEN=1` rewrites it instead.
fn assert_matches_file(actual: &str, expected_path: &Path, regenerate_with: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(expected_path, actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
        return;
    }
    let expected = read(expected_path);
    assert!(
        actual == expected,
        "{} is out of date; review the difference and regenerate it with `{regenerate_with}`",
        expected_path.display()
    );
}

#[test]
fn crd_file_matches_the_binary() {
    let crd = render::crd_yaml().expect("the CRD serialises");
    assert_matches_file(&crd, &repo_path("crds/webcluster.yaml"), "make generate");
}

#[test]
fn examples_render_as_the_golden_files() {
    for example in ["roundcube", "ezplatform", "mosparo"] {
        let input = read(&repo_path(&format!("examples/{example}.yaml")));
        let output =
            render::manifests(&input).unwrap_or_else(|e| panic!("examples/{example}.yaml does not render: {e}"));
        assert_matches_file(&output, &repo_path(&format!("tests/golden/{example}.yaml")), "make generate");
    }
}

#[test]
fn render_is_deterministic() {
    let input = read(&repo_path("examples/roundcube.yaml"));
    let first = render::manifests(&input).expect("renders");
    assert_eq!(first, render::manifests(&input).expect("renders again"));
}

/// Render refuses every manifest of the invalid corpus with an error
/// containing its expected text (the field path, or the rule's message).
#[test]
fn invalid_manifests_are_refused_with_the_field_named() {
    for invalid in invalid_manifests() {
        match render::manifests(&invalid.text) {
            Ok(_) => {
                panic!("{} was accepted; expected an error containing {:?}", invalid.path.display(), invalid.expected)
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.contains(&invalid.expected),
                    "{}: error {message:?} does not contain {:?}",
                    invalid.path.display(),
                    invalid.expected
                );
            }
        }
    }
}

#[test]
fn non_yaml_input_is_an_error_not_a_panic() {
    let error = render::manifests("spec: [unclosed").expect_err("not YAML");
    assert!(error.to_string().contains("not valid YAML"), "{error}");
}

#[test]
fn other_kinds_of_the_group_are_refused() {
    let error = render::manifests("apiVersion: webcluster.io/v1alpha1\nkind: WebSite\nmetadata: {name: a}\n")
        .expect_err("wrong kind");
    assert!(error.to_string().contains("kind: must be WebCluster"), "{error}");
}

/// A fleet's manifest outgrows the YAML parser's default cap of 1,024 documents.
#[test]
fn a_stream_of_thousands_of_web_clusters_renders() {
    let count = 2_500;
    let input: String = (0..count)
        .map(|i| format!("apiVersion: webcluster.io/v1alpha1\nkind: WebCluster\nmetadata: {{name: site-{i}}}\nspec: {{app: {{image: php:8}}}}\n---\n"))
        .collect();
    let clusters = render::parse(&input).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(clusters.len(), count);
    assert_eq!(clusters.last().and_then(|c| c.metadata.name.as_deref()), Some("site-2499"));
}
