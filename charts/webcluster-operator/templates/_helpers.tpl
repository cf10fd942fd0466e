{{/* The chart name. */}}
{{- define "webcluster-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the namespaced objects: the release name, with the chart name unless it holds it already. */}}
{{- define "webcluster-operator.fullname" -}}
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

{{/* Name of the cluster-scoped objects: unique per release and namespace. */}}
{{- define "webcluster-operator.clusterName" -}}
{{- printf "%s-%s" (include "webcluster-operator.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "webcluster-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "webcluster-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webcluster-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "webcluster-operator.labels" -}}
helm.sh/chart: {{ include "webcluster-operator.chart" . }}
{{ include "webcluster-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "webcluster-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "webcluster-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "webcluster-operator.leaseName" -}}
{{- default (include "webcluster-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "webcluster-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the controller does with the API, least privilege, no wildcards. Shared by the
ClusterRole (all namespaces) and the Role (watchNamespace).
*/}}
{{- define "webcluster-operator.rules" -}}
# The WebClusters themselves: the controller's watch (list + watch) and its reads.
- apiGroups: ["webcluster.io"]
  resources: ["webclusters"]
  verbs: ["get", "list", "watch"]
# Status is written with a merge patch.
- apiGroups: ["webcluster.io"]
  resources: ["webclusters/status"]
  verbs: ["get", "patch"]
# Children: cached by watches (list + watch), read (get), server-side applied (patch,
# which needs create for new objects) and pruned (delete).
- apiGroups: [""]
  resources: ["secrets", "configmaps", "services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Database pods: watched for their role and labelled primary/replica (patch).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
# The database primary's log: the identity of its data, or why it refuses to serve.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# A failover runs the database agent's commands (start.sh position, fence,
# promote, follow) in the database containers.
- apiGroups: [""]
  resources: ["pods/exec"]
  verbs: ["create"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Gateway API HTTPRoutes (spec.httpRoute); watched only while the cluster serves them.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Events about WebClusters (the recorder creates them and patches repeated ones).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# A Job's FailedCreate Events: pods the API server refused (read while a Job shows no pod).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end }}
