// Package deploy holds how kustode serve is installed, as data: the Helm chart
// (helm/kustode), the plain manifests rendered from it (kubernetes/kustode.yaml,
// by make deploy-manifests) and the kube-apiserver audit configuration
// (audit/). It has no code; its tests prove that the chart renders the
// committed manifests, that the monitor's pod meets the Pod Security Standards
// restricted profile, that kustode's own posture checks find nothing high or
// critical in it, and that the monitor's ClusterRole is exactly the read-only
// set serve needs.
package deploy
