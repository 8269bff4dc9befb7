// Command etcd is the etcd server built from the module graph pinned in
// hack/k8senv/go.mod, so that tests use an etcd that matches the pinned
// Kubernetes release without downloading a prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
