{{- define "sagaz-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sagaz-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sagaz-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sagaz-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sagaz-operator.labels" -}}
{{ include "sagaz-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sagaz-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The Secret and key holding the database URL. */}}
{{- define "sagaz-operator.databaseSecret" -}}
{{- if .Values.database.existingSecret.name -}}
{{- .Values.database.existingSecret.name -}}
{{- else -}}
{{- printf "%s-database" (include "sagaz-operator.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "sagaz-operator.databaseKey" -}}
{{- if .Values.database.existingSecret.name -}}
{{- .Values.database.existingSecret.key -}}
{{- else -}}
url
{{- end -}}
{{- end -}}

{{/* The same restricted security context for every container of the chart. */}}
{{- define "sagaz-operator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "sagaz-operator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The operator's rights on Secrets and workloads: cluster-wide, or a Role per namespace. */}}
{{- define "sagaz-operator.workloadRules" -}}
# headersFrom of HTTP steps, and OutboxWorkers' database URLs.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Job steps, and reading their pods' termination messages.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
# OutboxWorkers' children.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{/*
The served namespaces, comma-separated, when each entry of watchNamespaces is a plain name
(a Role can be written for it); empty when serving the whole cluster or a glob such as "shop-*".
*/}}
{{- define "sagaz-operator.scopedNamespaces" -}}
{{- $names := list -}}
{{- $plain := true -}}
{{- range .Values.watchNamespaces -}}
{{- range splitList "," . -}}
{{- if regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" . -}}
{{- $names = append $names . -}}
{{- else -}}
{{- $plain = false -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $plain $names -}}
{{- join "," (uniq $names) -}}
{{- end -}}
{{- end -}}
