//go:build tools

// Package tools pins the real node's Kubernetes commands this module builds
// (same k8s.io/kubernetes pin as hack/toolchain/kubernetes).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
