// Command busybox-image writes the busybox OCI image tarball the tests
// import into containerd (built in Go from Debian's busybox-static, no
// registry) and prints its path and name: `make demo` imports it.
package main

import (
	"fmt"
	"os"

	"github.com/runmini/runmini/tests/testutil"
)

func main() {
	path, err := testutil.WriteBusyboxImage()
	if err != nil {
		fmt.Fprintf(os.Stderr, "busybox-image: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(path, testutil.BusyboxRef)
}
