//go:build tools

// Package tools pins runc (built with cgo and libseccomp).
package tools

import (
	_ "github.com/opencontainers/runc"
)
