// Package examples embeds the example manifests, so that `kustode demo` can
// apply them to the cluster it starts. The manifests themselves are the
// documentation: see README.md in this directory.
package examples

import "embed"

// InsecureShop is a small shop with the misconfigurations real clusters
// have: a privileged DaemonSet, credentials in env literals and ConfigMaps,
// a mutable image tag, no NetworkPolicy default deny.
//
//go:embed insecure-shop/*.yaml
var InsecureShop embed.FS
