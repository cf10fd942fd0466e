//! Fuzzing `render` and the validator with proptest: arbitrary text, arbitrary
//! YAML/JSON values, and the examples mutated at random places (so inputs get
//! past the apiVersion and kind checks into the schema, the rules and the
//! builder). Nothing may panic; a refusal names its document.
//!
//! `FUZZ_CASES` sets the inputs per target (default 500, the short run of
//! `make test`); `make fuzz` runs a long one. Each target prints its figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use webcluster::api::validate::{check_rules, check_schema, integral_floats_as_integers};
use webcluster::api::{WebCluster, crd};
use webcluster::render;

/// Inputs per target.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(500)
}

/// Runs `check` on `cases()` inputs of `strategy`; prints how many and how long.
fn fuzz<S: Strategy>(target: &str, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let cases = cases();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let start = Instant::now();
    let accepted = ACCEPTED.load(Ordering::Relaxed);
    let result = runner.run(&strategy, check);
    println!(
        "[fuzz] {target}: {cases} inputs in {:.1} s ({} renders accepted, the rest refused)",
        start.elapsed().as_secs_f64(),
        ACCEPTED.load(Ordering::Relaxed) - accepted
    );
    if let Err(failure) = result {
        panic!("{target}: {failure}");
    }
}

/// Every property name of the CRD's schema, so generated objects hit real fields.
fn field_names() -> Vec<String> {
    fn collect(schema: &Value, names: &mut BTreeSet<String>) {
        match schema {
            Value::Object(node) => {
                if let Some(Value::Object(properties)) = node.get("properties") {
                    names.extend(properties.keys().cloned());
                }
                node.values().for_each(|child| collect(child, names));
            }
            Value::Array(items) => items.iter().for_each(|child| collect(child, names)),
            _ => {}
        }
    }
    let mut names = BTreeSet::new();
    collect(&serde_json::to_value(crd()).expect("the CRD serialises"), &mut names);
    names.into_iter().collect()
}

/// Strings that sit near the edges of the formats the validator knows.
fn edgy_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9.+eEKMGTPinumk -]{0,8}",
        "[0-9*/,@a-zA-Z -]{0,24}",
        "[A-Za-z_/+-]{0,20}",
        ".{0,40}",
        Just(String::new()),
        Just("webcluster.io/v1alpha1".to_string()),
        Just("WebCluster".to_string()),
    ]
}

/// Arbitrary JSON values whose keys are mostly the CRD's field names.
fn json_value() -> impl Strategy<Value = Value> {
    let names = field_names();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-100i64..70000).prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        edgy_string().prop_map(Value::from),
    ];
    let key = prop_oneof![4 => proptest::sample::select(names), 1 => "[a-zA-Z]{1,10}"];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The WebClusters of the examples, as JSON values.
fn examples() -> Vec<Value> {
    ["roundcube", "ezplatform", "mosparo"]
        .iter()
        .flat_map(|example| {
            let path = harness::cluster::repo_root().join(format!("examples/{example}.yaml"));
            let text = std::fs::read_to_string(&path).expect("the example is readable");
            serde_saphyr::from_multiple::<Value>(&text).expect("the example is YAML")
        })
        .filter(|document| document.get("kind").and_then(Value::as_str) == Some("WebCluster"))
        .collect()
}

/// One change at one place of a document.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, Value),
    Remove(Index),
    Insert(Index, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let names = field_names();
    prop_oneof![
        (any::<Index>(), json_value()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), proptest::sample::select(names), json_value())
            .prop_map(|(at, name, value)| Mutation::Insert(at, name, value)),
    ]
}

/// JSON pointers of every value in `document` below its root.
fn pointers(document: &Value, at: String, out: &mut Vec<String>) {
    match document {
        Value::Object(fields) => fields.iter().for_each(|(name, child)| {
            let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
            out.push(pointer.clone());
            pointers(child, pointer, out);
        }),
        Value::Array(items) => items.iter().enumerate().for_each(|(index, child)| {
            let pointer = format!("{at}/{index}");
            out.push(pointer.clone());
            pointers(child, pointer, out);
        }),
        _ => {}
    }
}

fn apply(document: &mut Value, mutation: Mutation) {
    let mut all = Vec::new();
    pointers(document, String::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let at = match &mutation {
        Mutation::Replace(at, _) | Mutation::Remove(at) | Mutation::Insert(at, ..) => at.get(&all).clone(),
    };
    match mutation {
        Mutation::Replace(_, value) => {
            if let Some(slot) = document.pointer_mut(&at) {
                *slot = value;
            }
        }
        Mutation::Remove(_) => {
            let (parent, last) = at.rsplit_once('/').unwrap_or_default();
            match document.pointer_mut(parent) {
                Some(Value::Object(fields)) => {
                    fields.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Some(index) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                        items.remove(index);
                    }
                }
                _ => {}
            }
        }
        Mutation::Insert(_, name, value) => {
            if let Some(Value::Object(fields)) = document.pointer_mut(&at) {
                fields.insert(name, value);
            }
        }
    }
}

/// The checks every input gets: `render` and the validator return, never
/// panic, and a refusal says which document it is about.
fn check_text(text: &str) -> Result<(), TestCaseError> {
    match render::manifests(text) {
        Ok(_) => {
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
    Ok(())
}

/// Inputs `render` accepted (the tests of this file run in parallel, so a
/// target's figure may include a few of another's).
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

fn check_value(document: &Value) -> Result<(), TestCaseError> {
    let _ = check_schema(document);
    if let Ok(cluster) = serde_json::from_value::<WebCluster>(document.clone()) {
        let _ = check_rules(&cluster);
    }
    check_text(&serde_json::to_string(document).map_err(|e| TestCaseError::fail(e.to_string()))?)?;
    if let Ok(yaml) = serde_saphyr::to_string(document) {
        check_text(&yaml)?;
    }
    Ok(())
}

#[test]
fn arbitrary_text_never_panics() {
    let text = prop_oneof![".{0,300}", "[-:{}\\[\\],&*#?|<>=!%@`'\" \n\ta-z0-9]{0,300}"];
    fuzz("arbitrary text", text, |text| check_text(&text));
}

#[test]
fn arbitrary_values_never_panic() {
    let document = (json_value(), json_value()).prop_map(|(spec, metadata)| {
        serde_json::json!({"apiVersion": "webcluster.io/v1alpha1", "kind": "WebCluster", "metadata": metadata, "spec": spec})
    });
    fuzz("arbitrary YAML/JSON values", prop_oneof![json_value(), document], |document| check_value(&document));
}

#[test]
fn mutated_examples_never_panic() {
    let examples = examples();
    assert_eq!(examples.len(), 3, "one WebCluster per example");
    let inputs = (proptest::sample::select(examples), proptest::collection::vec(mutation(), 1..4));
    fuzz("mutated examples", inputs, |(mut document, mutations)| {
        for mutation in mutations {
            apply(&mut document, mutation);
        }
        check_value(&document)
    });
}

/// A leaf value for the differential target: kinds of values that sit at the
/// edges of the validator's checks (a deep object only tells type errors apart).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-2i64..70000).prop_map(Value::from),
        prop_oneof![Just(0.5), Just(1e3), Just(-1.0)].prop_map(Value::from),
        edgy_string().prop_map(Value::from),
        proptest::collection::vec(edgy_string().prop_map(Value::from), 0..3).prop_map(Value::Array),
        Just(serde_json::json!({})),
    ]
}

fn leaf_mutation() -> impl Strategy<Value = Mutation> {
    let names = field_names();
    prop_oneof![
        6 => (any::<Index>(), leaf()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        2 => (any::<Index>(), proptest::sample::select(names), leaf())
            .prop_map(|(at, name, value)| Mutation::Insert(at, name, value)),
    ]
}

/// The API server's verdict on `document` as `kubectl create --dry-run=server`
/// sends it (unknown fields refused, integral floats written as integers):
/// `Err` with its message.
async fn server_verdict(client: &kube::Client, namespace: &str, document: &Value) -> Result<(), String> {
    let mut document = document.clone();
    integral_floats_as_integers(&mut document);
    let uri =
        format!("/apis/webcluster.io/v1alpha1/namespaces/{namespace}/webclusters?dryRun=All&fieldValidation=Strict");
    let body = serde_json::to_vec(&document).map_err(|e| e.to_string())?;
    let request =
        http::Request::post(uri).header("content-type", "application/json").body(body).map_err(|e| e.to_string())?;
    match client.request_text(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(e) => panic!("the API server did not answer: {e}"),
    }
}

/// `render` and the real API server give the same verdict on examples changed
/// at one to three random places (`FUZZ_SERVER_CASES` inputs, default 200).
#[test]
fn render_and_the_api_server_agree_on_mutated_examples() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let namespace = runtime.block_on(async {
        harness::cluster::ensure_crd().await;
        harness::cluster::TestNamespace::new("fuzz-verdicts").await
    });
    let client = namespace.client();
    let cases = std::env::var("FUZZ_SERVER_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 256, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let inputs = (proptest::sample::select(examples()), proptest::collection::vec(leaf_mutation(), 1..4));
    let start = Instant::now();
    let refused = AtomicUsize::new(0);
    let result = runner.run(&inputs, |(mut document, mutations)| {
        for mutation in mutations {
            apply(&mut document, mutation);
        }
        // render skips documents of other API groups (a ConfigMap beside the WebCluster).
        let version = document.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        prop_assume!(version.starts_with("webcluster.io/"));
        if let Some(metadata) = document.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("namespace".into(), Value::from(namespace.name()));
        }
        let text = serde_json::to_string(&document).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let offline = render::manifests(&text).map(drop).map_err(|e| e.to_string());
        let online = runtime.block_on(server_verdict(&client, namespace.name(), &document));
        if offline.is_err() {
            refused.fetch_add(1, Ordering::Relaxed);
        }
        prop_assert_eq!(offline.is_ok(), online.is_ok(), "render: {:?}\nAPI server: {:?}\n{}", offline, online, text);
        Ok(())
    });
    println!(
        "[fuzz] render vs API server: {cases} mutated examples in {:.1} s ({} refused by both, the rest accepted by both)",
        start.elapsed().as_secs_f64(),
        refused.load(Ordering::Relaxed)
    );
    if let Err(failure) = result {
        panic!("render and the API server disagree: {failure}");
    }
}
