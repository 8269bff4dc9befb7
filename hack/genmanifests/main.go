// Command genmanifests writes N synthetic Kubernetes objects as one YAML
// stream to standard output, for measuring `kustode scan` on large inputs:
//
//	go run ./hack/genmanifests -n 31800 > /tmp/large.yaml
//	/usr/bin/time -v bin/kustode scan -o json /tmp/large.yaml > /dev/null
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/kustode/kustode/internal/testgen"
)

func main() {
	n := flag.Int("n", 1000, "number of objects")
	flag.Parse()
	w := bufio.NewWriter(os.Stdout)
	if err := testgen.Write(w, *n); err != nil {
		fmt.Fprintln(os.Stderr, "genmanifests:", err)
		os.Exit(1)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "genmanifests:", err)
		os.Exit(1)
	}
}
