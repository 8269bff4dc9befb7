{{/* Names and labels shared by every template. */}}

{{- define "kustode.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name when it already
contains the chart name (release "kustode" gives "kustode"), else
RELEASE-kustode. Cluster-scoped objects (ClusterRoles) carry it too, so two
releases never collide.
*/}}
{{- define "kustode.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kustode.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kustode.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kustode.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kustode.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: monitor
app.kubernetes.io/part-of: kustode
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kustode.serviceAccountName" -}}
{{- default (include "kustode.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The Secret holding the audit webhook's bearer token (key "token"). */}}
{{- define "kustode.auditTokenSecret" -}}
{{- default (printf "%s-audit-token" (include "kustode.fullname" .)) .Values.auditWebhook.token.existingSecret }}
{{- end }}

{{/* The Secret holding the PostgreSQL URL, empty when the store is SQLite. */}}
{{- define "kustode.storeSecret" -}}
{{- with .Values.store.postgres }}
{{- if .existingSecret }}{{ .existingSecret }}
{{- else if .url }}{{ printf "%s-store" (include "kustode.fullname" $) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
GOMEMLIMIT in bytes: goMemLimitPercent of resources.limits.memory. Empty
when there is no memory limit, the percentage is 0, or extraEnv sets
GOMEMLIMIT itself.
*/}}
{{- define "kustode.goMemLimit" -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) | toString }}
{{- $pct := int (.Values.goMemLimitPercent | default 0) }}
{{- $own := false }}
{{- range .Values.extraEnv }}
{{- if eq .name "GOMEMLIMIT" }}{{ $own = true }}{{ end }}
{{- end }}
{{- if and $limit (gt $pct 0) (not $own) }}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- $num := regexFind "^[0-9]+" $limit }}
{{- $suffix := trimPrefix $num $limit }}
{{- if or (not $num) (not (hasKey $units $suffix)) }}
{{- fail (printf "resources.limits.memory %q: goMemLimitPercent needs a whole number with an optional suffix (Ki, Mi, Gi, Ti, k, M, G, T); or set goMemLimitPercent: 0 and GOMEMLIMIT in extraEnv" $limit) }}
{{- end }}
{{- div (mul (int64 $num) (get $units $suffix) $pct) 100 }}
{{- end }}
{{- end }}

{{- define "kustode.image" -}}
{{- with .Values.image }}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (default $.Chart.AppVersion .tag) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
config.yaml. The chart owns listen, dataDir, api and audit (ports and the
paths of the mounted volumes), and kubelet when kubelet.readConfig is on
(it grants the permissions too); every other key of .Values.config is
copied.
One projected volume at /etc/kustode holds config.yaml, audit/token and the
TLS files, so no mount nests inside another.
*/}}
{{- define "kustode.config" -}}
{{- $owned := dict "listen" (printf ":%v" .Values.api.port) "dataDir" "/var/lib/kustode" }}
{{- $audit := dict "webhookListen" (printf ":%v" .Values.auditWebhook.port) "webhookTokenFile" "/etc/kustode/audit/token" }}
{{- if .Values.auditWebhook.tls.secretName }}
{{- $_ := set $audit "webhookTLSCertFile" "/etc/kustode/tls/audit/tls.crt" }}
{{- $_ := set $audit "webhookTLSKeyFile" "/etc/kustode/tls/audit/tls.key" }}
{{- end }}
{{- $_ := set $owned "audit" $audit }}
{{- if .Values.api.tls.secretName }}
{{- $_ := set $owned "api" (dict "tlsCertFile" "/etc/kustode/tls/api/tls.crt" "tlsKeyFile" "/etc/kustode/tls/api/tls.key") }}
{{- end }}
{{- if .Values.kubelet.readConfig }}
{{- $_ := set $owned "kubelet" (dict "readConfig" true "configInterval" .Values.kubelet.configInterval) }}
{{- else if dig "kubelet" "readConfig" false (.Values.config | default dict) }}
{{- fail "config.kubelet.readConfig: set the chart value kubelet.readConfig instead, which also grants the permissions it needs (get on nodes/proxy)" }}
{{- end }}
{{- toYaml (mustMergeOverwrite (deepCopy (.Values.config | default dict)) $owned) }}
{{- end }}
