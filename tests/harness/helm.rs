//! Helm (the toolchain's binary) on the chart `charts/webcluster-operator`:
//! offline (lint, template) and against the test cluster, and a release that
//! is uninstalled when dropped.

use std::process::{Command, Output};

use super::cluster::{describe, ensure_cluster, kubeconfig_path, repo_root, toolchain_bin, unique_name};

pub const CHART: &str = "charts/webcluster-operator";
pub const CHART_NAME: &str = "webcluster-operator";

pub fn helm_command(args: &[&str]) -> Command {
    let mut command = Command::new(toolchain_bin().join("helm"));
    command.args(args).current_dir(repo_root());
    command
}

/// Runs helm offline (lint, template); panics unless it succeeds; returns stdout.
pub fn helm_ok(args: &[&str]) -> String {
    let output = helm_command(args).output().expect("running helm");
    assert!(output.status.success(), "{}", describe(&format!("helm {}", args.join(" ")), &output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs helm against the test cluster.
pub fn helm_cluster(args: &[&str]) -> Output {
    ensure_cluster();
    let kubeconfig = kubeconfig_path();
    helm_command(&[&["--kubeconfig", &kubeconfig.to_string_lossy()], args].concat()).output().expect("running helm")
}

pub fn helm_cluster_ok(args: &[&str]) -> String {
    let output = helm_cluster(args);
    assert!(output.status.success(), "{}", describe(&format!("helm {}", args.join(" ")), &output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The name of the chart's namespaced objects for a release (Helm's usual fullname).
pub fn fullname(release: &str) -> String {
    if release.contains(CHART_NAME) { release.to_string() } else { format!("{release}-{CHART_NAME}") }
}

/// A Helm release in a test namespace, uninstalled when dropped (its ClusterRole
/// and ClusterRoleBinding would outlive the namespace otherwise). Declare it
/// after the namespaces so it is dropped first.
pub struct Release {
    pub name: String,
    pub namespace: String,
    installed: bool,
}

impl Release {
    /// Installs the chart (the CRD must be installed: `ensure_crd`).
    pub fn install(namespace: &str, extra: &[&str]) -> Self {
        let name = unique_name("wco");
        helm_cluster_ok(&[&["install", &name, CHART, "--namespace", namespace], extra].concat());
        Self { name, namespace: namespace.to_string(), installed: true }
    }

    /// `helm upgrade` of the release with `extra` arguments.
    pub fn upgrade(&self, extra: &[&str]) -> String {
        helm_cluster_ok(&[&["upgrade", &self.name, CHART, "--namespace", &self.namespace], extra].concat())
    }

    pub fn fullname(&self) -> String {
        fullname(&self.name)
    }

    /// Name of the release's cluster-scoped objects (and of the workload Role).
    pub fn cluster_name(&self) -> String {
        format!("{}-{}", self.fullname(), self.namespace)
    }

    pub fn uninstall(&mut self) {
        if std::mem::take(&mut self.installed) {
            helm_cluster_ok(&["uninstall", &self.name, "--namespace", &self.namespace, "--wait", "--timeout", "60s"]);
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if std::mem::take(&mut self.installed) {
            let output = helm_cluster(&["uninstall", &self.name, "--namespace", &self.namespace]);
            if !output.status.success() {
                eprintln!("warning: {}", describe(&format!("helm uninstall {}", self.name), &output));
            }
        }
    }
}
