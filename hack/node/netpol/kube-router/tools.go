//go:build tools

// Package tools pins kube-router, the real node's NetworkPolicy enforcer
// (firewall-only mode; hack/node.sh netpol).
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
