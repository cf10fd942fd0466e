// Command kstatus prints the status kstatus (sigs.k8s.io/cli-utils, the
// library Flux and kpt judge health with) computes for one object read as
// JSON from stdin: the status (Current, InProgress, Failed...), a tab, its message.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	// Decoded as the API machinery does: integers stay int64, which kstatus expects.
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(data); err != nil {
		fail("stdin is not a Kubernetes object as JSON: %v", err)
	}
	result, err := status.Compute(object)
	if err != nil {
		fail("kstatus: %v", err)
	}
	fmt.Printf("%s\t%s\n", result.Status, result.Message)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
