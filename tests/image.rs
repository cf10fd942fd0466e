//! The operator's image (`make image`, hack/image.sh): the Dockerfile describes
//! the same image (user, entrypoint, ports) as the script's config, and the
//! archive holds the binary and its libraries, runs as 65532 and has no shell.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bash(script: &str) -> String {
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", script]).current_dir(repo()).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// User, entrypoint and exposed ports of the Dockerfile's final stage, as an image config says them.
fn dockerfile_config(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let last_stage = text.rsplit_once("\nFROM ").expect("a FROM line").1;
    let (mut user, mut entrypoint, mut ports) = (Value::Null, Value::Null, serde_json::Map::new());
    for line in last_stage.lines() {
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instruction {
            "USER" => user = json!(rest.trim()),
            "ENTRYPOINT" => entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in JSON form"),
            "EXPOSE" => {
                for port in rest.split_whitespace() {
                    let port = if port.contains('/') { port.to_string() } else { format!("{port}/tcp") };
                    ports.insert(port, json!({}));
                }
            }
            _ => {}
        }
    }
    json!({ "User": user, "Entrypoint": entrypoint, "ExposedPorts": ports })
}

#[test]
fn dockerfile_describes_the_image_hack_image_sh_builds() {
    let config: Value = serde_json::from_str(&bash("bash hack/image.sh config")).unwrap();
    let script = json!({
        "User": config["User"],
        "Entrypoint": config["Entrypoint"],
        "ExposedPorts": config["ExposedPorts"],
    });
    assert_eq!(dockerfile_config(&repo().join("Dockerfile")), script);
    assert_eq!(config["User"], "65532:65532", "a numeric non-root user");
}

/// Builds the image (a release build; incremental) and looks inside the archive.
#[test]
fn image_archive_holds_the_binary_and_its_libraries_only() {
    let tar = bash("bash hack/image.sh build | tail -n 1");
    let tar = tar.trim();
    let manifest: Value = serde_json::from_str(&bash(&format!("tar -xOf {tar} manifest.json"))).unwrap();
    let entry = &manifest[0];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(entry["RepoTags"], json!([format!("ghcr.io/webcluster/webcluster-operator:{version}")]));
    let config: Value =
        serde_json::from_str(&bash(&format!("tar -xOf {tar} {}", entry["Config"].as_str().unwrap()))).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"], json!(["/webcluster-operator", "run"]));
    let layer = entry["Layers"][0].as_str().unwrap();
    let files = bash(&format!("tar -xOf {tar} {layer} | tar -tv --numeric-owner"));
    let names: Vec<&str> = files.lines().filter_map(|l| l.split_whitespace().last()).collect();
    assert!(names.contains(&"webcluster-operator"), "{files}");
    assert!(names.iter().any(|n| n.ends_with("/libc.so.6")), "glibc is in the image:\n{files}");
    assert!(!names.iter().any(|n| n.ends_with("bin/sh") || n.ends_with("/bash")), "no shell:\n{files}");
    for line in files.lines() {
        assert!(line.split_whitespace().nth(1) == Some("0/0"), "every file belongs to root: {line}");
    }
}
