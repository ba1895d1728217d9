{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "consensus-engine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already holds the chart name. */}}
{{- define "consensus-engine.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "consensus-engine.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "consensus-engine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "consensus-engine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "consensus-engine.labels" -}}
helm.sh/chart: {{ include "consensus-engine.chart" . }}
{{ include "consensus-engine.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: consensus-engine
{{- end }}

{{/* The image reference: by digest when one is given (the tag is then ignored), else by tag. */}}
{{- define "consensus-engine.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Labels of a pod template, (dict "root" $ "own" <component labels> "extra" <podLabels>): the
extra labels, the selector labels and the component's own, the chart's winning on a clash so
that no Deployment loses its pods.
*/}}
{{- define "consensus-engine.podLabels" -}}
{{- $selector := include "consensus-engine.selectorLabels" .root | fromYaml }}
{{- toYaml (merge (deepCopy .own) $selector (deepCopy (.extra | default dict))) }}
{{- end }}

{{/*
Scheduling extras of a pod spec, (dict "priorityClassName" S "constraints" L "selector" M):
the PriorityClass, and the topology spread constraints, each without a labelSelector given
one that selects the pods of its own workload.
*/}}
{{- define "consensus-engine.podScheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- if .constraints }}
{{- $constraints := list }}
{{- range .constraints }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $.selector) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
topologySpreadConstraints:
  {{- toYaml $constraints | nindent 2 }}
{{- end }}
{{- end }}

{{/* A container's startupProbe on its liveness path, (dict "probe" <values> "path" P), if on. */}}
{{- define "consensus-engine.startupProbe" -}}
{{- if .probe.enabled }}
startupProbe:
  httpGet:
    path: {{ .path }}
    port: http
  {{- toYaml (omit .probe "enabled") | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount of one role, (dict "root" $ "role" R): its own name if set; otherwise, when
the chart creates them, "<serviceAccount.name or the full name>-<role>"; otherwise the one
existing serviceAccount.name.
*/}}
{{- define "consensus-engine.serviceAccountName" -}}
{{- $sa := .root.Values.serviceAccount }}
{{- $own := (get $sa .role | default dict).name }}
{{- if $own }}
{{- $own }}
{{- else if $sa.create }}
{{- printf "%s-%s" (default (include "consensus-engine.fullname" .root) $sa.name) .role | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required (printf "serviceAccount.name or serviceAccount.%s.name is required when serviceAccount.create is false" .role) $sa.name }}
{{- end }}
{{- end }}

{{/* The Google service account one role acts as: its own, or serviceAccount.gcpServiceAccount. */}}
{{- define "consensus-engine.gcpServiceAccount" -}}
{{- $own := (get .root.Values.serviceAccount .role | default dict).gcpServiceAccount }}
{{- default .root.Values.serviceAccount.gcpServiceAccount $own }}
{{- end }}

{{/* Annotations of one role's ServiceAccount: the shared ones, its own, Workload Identity. */}}
{{- define "consensus-engine.serviceAccountAnnotations" -}}
{{- $own := (get .root.Values.serviceAccount .role | default dict).annotations | default dict }}
{{- $annotations := merge (deepCopy $own) (deepCopy .root.Values.serviceAccount.annotations) }}
{{- with include "consensus-engine.gcpServiceAccount" . }}
{{- $_ := set $annotations "iam.gke.io/gcp-service-account" . }}
{{- end }}
{{- toYaml $annotations }}
{{- end }}

{{/*
DB_USER for a role that logs in to Cloud SQL as a Google service account of its own
(cloudSqlIam, no database.user): the ConfigMap's DB_USER is the shared account's.
(dict "root" $ "role" R); nothing for the other roles.
*/}}
{{- define "consensus-engine.roleDbUserEnv" -}}
{{- $v := .root.Values }}
{{- $own := (get $v.serviceAccount .role | default dict).gcpServiceAccount }}
{{- if and $own (eq $v.database.mode "cloudSqlIam") (not $v.database.user) }}
- name: DB_USER
  value: {{ $own | trimSuffix ".gserviceaccount.com" | quote }}
{{- end }}
{{- end }}

{{/* DB_USER: explicit, or the Cloud SQL IAM user of the Google service account. */}}
{{- define "consensus-engine.dbUser" -}}
{{- if .Values.database.user }}
{{- .Values.database.user }}
{{- else if eq .Values.database.mode "cloudSqlIam" }}
{{- required "database.user or serviceAccount.gcpServiceAccount is required with database.mode=cloudSqlIam" .Values.serviceAccount.gcpServiceAccount | trimSuffix ".gserviceaccount.com" }}
{{- else if ne .Values.database.mode "url" }}
{{- fail (printf "database.user is required with database.mode=%s" .Values.database.mode) }}
{{- end }}
{{- end }}

{{/*
Every non-secret setting as a map, shared by the ConfigMap and the migration hook's copy.
Values from config.extra come first; the settings the chart manages win over them.
*/}}
{{- define "consensus-engine.configData" -}}
{{- $v := .Values }}
{{- $data := dict
  "ENV" $v.config.env
  "LOG_LEVEL" $v.config.logLevel
  "API_HOST" "0.0.0.0"
  "API_PORT" ($v.api.port | toString)
  "API_METRICS_PORT" ($v.api.metricsPort | toString)
  "PUBSUB_PROJECT_ID" $v.config.pubsub.projectId
  "PUBSUB_TOPIC" $v.config.pubsub.topic
  "PUBSUB_SUBSCRIPTION" $v.config.pubsub.subscription
  "PUBSUB_DELIVERY" "pull"
  "PUBSUB_AUTO_CREATE" ($v.config.pubsub.autoCreate | toString)
  "PUBSUB_MAX_DELIVERY_ATTEMPTS" ($v.config.pubsub.maxDeliveryAttempts | toString)
  "EXPAND_MODEL" $v.config.llm.expandModel
  "REVIEW_MODEL" $v.config.llm.reviewModel
  "WORKER_SHUTDOWN_TIMEOUT_SECONDS" ($v.worker.shutdownTimeoutSeconds | toString)
  "WORKER_ACK_DEADLINE_SECONDS" ($v.worker.ackDeadlineSeconds | toString)
  "WORKER_STEP_TIMEOUT_SECONDS" ($v.worker.stepTimeoutSeconds | toString)
  "WORKER_JOB_TIMEOUT_SECONDS" ($v.worker.jobTimeoutSeconds | toString)
  "WORKER_HTTP_HOST" "0.0.0.0"
  "WORKER_HTTP_PORT" ($v.worker.httpPort | toString)
  "WORKER_METRICS_PORT" ($v.worker.metricsPort | toString)
  "DB_NAME" $v.database.name
  "DB_POOL_SIZE" ($v.database.pool.size | toString)
  "DB_MAX_OVERFLOW" ($v.database.pool.maxOverflow | toString)
  "DB_POOL_TIMEOUT" ($v.database.pool.timeoutSeconds | toString)
  "DB_POOL_RECYCLE" ($v.database.pool.recycleSeconds | toString)
  "WEB_APP_ENABLED" ($v.config.webApp.enabled | toString)
}}
{{- with $v.config.corsOrigins }}
{{- $_ := set $data "CORS_ORIGINS" (join "," .) }}
{{- end }}
{{- with $v.config.llm.timeoutSeconds }}
{{- $_ := set $data "LLM_TIMEOUT_SECONDS" (toString .) }}
{{- end }}
{{- with $v.config.llm.baseUrl }}
{{- $_ := set $data "OPENAI_BASE_URL" . }}
{{- end }}
{{- $mode := $v.database.mode }}
{{- if or (eq $mode "cloudSqlIam") (eq $mode "cloudSqlPassword") }}
{{- $_ := set $data "USE_CLOUD_SQL_CONNECTOR" "true" }}
{{- $_ := set $data "DB_INSTANCE_CONNECTION_NAME" (required (printf "database.instanceConnectionName is required with database.mode=%s" $mode) $v.database.instanceConnectionName) }}
{{- $_ := set $data "DB_IAM_AUTH" (ternary "true" "false" (eq $mode "cloudSqlIam")) }}
{{- else }}
{{- $_ := set $data "USE_CLOUD_SQL_CONNECTOR" "false" }}
{{- $_ := set $data "DB_IAM_AUTH" "false" }}
{{- end }}
{{- if eq $mode "password" }}
{{- $_ := set $data "DB_HOST" (required "database.host is required with database.mode=password" $v.database.host) }}
{{- $_ := set $data "DB_PORT" ($v.database.port | toString) }}
{{- end }}
{{- if ne $mode "url" }}
{{- $_ := set $data "DB_USER" (include "consensus-engine.dbUser" .) }}
{{- end }}
{{- $extra := dict }}
{{- range $key, $value := $v.config.extra }}
{{- $_ := set $extra $key (toString $value) }}
{{- end }}
{{- toYaml (merge $data $extra) }}
{{- end }}

{{/* Secrets, only ever by reference to the existing Secret. */}}
{{/*
The secrets one role reads, and no others: (dict "root" $ "llm" bool "apiKeys" bool).
The database credential goes to every role; the LLM key only where an LLM is called (and
optional in the Secret with a self-hosted config.llm.baseUrl), the API keys only to the API.
*/}}
{{- define "consensus-engine.secretEnv" -}}
{{- $root := .root -}}
{{- $s := $root.Values.existingSecret -}}
{{- if .llm }}
- name: OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s.name | quote }}
      key: {{ $s.openaiApiKeyKey | quote }}
      {{- if $root.Values.config.llm.baseUrl }}
      {{- /* A self-hosted OpenAI-compatible server may need no key. */}}
      optional: true
      {{- end }}
{{- end }}
{{- if .apiKeys }}
- name: API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $s.name | quote }}
      key: {{ $s.apiKeysKey | quote }}
{{- end }}
{{- if or (eq $root.Values.database.mode "cloudSqlPassword") (eq $root.Values.database.mode "password") }}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $s.name | quote }}
      key: {{ $s.dbPasswordKey | quote }}
{{- else if eq $root.Values.database.mode "url" }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $s.name | quote }}
      key: {{ $s.databaseUrlKey | quote }}
{{- end }}
{{- end }}

{{- define "consensus-engine.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "consensus-engine.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Restart pods when the settings change. */}}
{{- define "consensus-engine.configChecksum" -}}
checksum/config: {{ include "consensus-engine.configData" . | sha256sum }}
{{- end }}

{{/* terminationGracePeriodSeconds of a worker: always longer than its shutdown timeout. */}}
{{- define "consensus-engine.workerGracePeriod" -}}
{{- add (int .Values.worker.shutdownTimeoutSeconds) (max 1 (int .Values.worker.terminationGraceMarginSeconds)) }}
{{- end }}

{{- define "consensus-engine.keda.subscription" -}}
{{- default (printf "projects/%s/subscriptions/%s" .Values.config.pubsub.projectId .Values.config.pubsub.subscription) .Values.keda.subscriptionName }}
{{- end }}
