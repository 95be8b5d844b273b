{{/*
Helpers of the Taskora chart. tests/deploy_yaml.sh renders the chart with Helm's template
engine (tests/helmrender: text/template, sprig and Helm's functions) and checks the result.
*/}}

{{- define "taskora.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "taskora.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taskora.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "taskora.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{ .Values.secrets.existingSecret }}
{{- else -}}
{{ .Release.Name }}-secrets
{{- end -}}
{{- end }}

{{/* The Secret (key "token") holding the Dapr app API token. */}}
{{- define "taskora.daprTokenSecret" -}}
{{- if .Values.dapr.appTokenSecret -}}
{{ .Values.dapr.appTokenSecret }}
{{- else -}}
{{ .Release.Name }}-dapr-app-token
{{- end -}}
{{- end }}

{{- define "taskora.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Release.Name }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end }}

{{- define "taskora.kafkaBrokers" -}}
{{- if .Values.redpanda.enabled -}}
{{ .Release.Name }}-redpanda-0.{{ .Release.Name }}-redpanda.{{ .Release.Namespace }}.svc.cluster.local:9092
{{- else -}}
{{ .Values.kafka.brokers }}
{{- end -}}
{{- end }}

{{/* Environment every taskorad container gets: settings from the ConfigMap, the database
URL and the optional Kafka SASL password from the Secret. */}}
{{- define "taskora.commonEnv" -}}
envFrom:
  - configMapRef:
      name: {{ .Release.Name }}-settings
env:
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "taskora.secretName" . }}
        key: DATABASE_URL
  - name: KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "taskora.secretName" . }}
        key: KAFKA_SASL_PASSWORD
        optional: true
{{- end }}

{{/* Probes, ports and the security context shared by the taskorad containers. */}}
{{- define "taskora.containerCommon" -}}
imagePullPolicy: {{ .Values.image.pullPolicy }}
ports:
  - name: http
    containerPort: 8000
    protocol: TCP
  - name: admin
    containerPort: 9090
    protocol: TCP
livenessProbe:
  httpGet:
    path: /health
    port: http
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /ready
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/* Pod-level settings shared by the Deployments (each sets its terminationGracePeriodSeconds). */}}
{{- define "taskora.podCommon" -}}
serviceAccountName: {{ include "taskora.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- if .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml .Values.imagePullSecrets | nindent 2 }}
{{- end }}
{{- if .Values.nodeSelector }}
nodeSelector:
  {{- toYaml .Values.nodeSelector | nindent 2 }}
{{- end }}
{{- if .Values.tolerations }}
tolerations:
  {{- toYaml .Values.tolerations | nindent 2 }}
{{- end }}
{{- if .Values.affinity }}
affinity:
  {{- toYaml .Values.affinity | nindent 2 }}
{{- end }}
{{- end }}
