{{/* The release's name for every object, at most 63 characters. */}}
{{- define "eerp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "eerp.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eerp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "eerp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "eerp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Fails the render with what to set, instead of a pod that crash-loops. */}}
{{- define "eerp.validate" -}}
{{- if not .Values.database.existingSecret -}}
{{- fail "database.existingSecret: name the Secret holding the PostgreSQL URL (kubectl create secret generic eerp-db --from-literal=url=postgres://...)" -}}
{{- end -}}
{{- if not .Values.auth.issuer -}}
{{- fail "auth.issuer: set the `iss` of the tokens EERP accepts" -}}
{{- end -}}
{{- $sources := 0 -}}
{{- if .Values.auth.jwksUrl }}{{ $sources = add1 $sources }}{{ end -}}
{{- if .Values.auth.publicKeys }}{{ $sources = add1 $sources }}{{ end -}}
{{- if or .Values.auth.hs256.existingSecret .Values.auth.hs256.secret }}{{ $sources = add1 $sources }}{{ end -}}
{{- if ne $sources 1 -}}
{{- fail "auth: configure exactly one key source: jwksUrl, publicKeys or hs256" -}}
{{- end -}}
{{- end -}}

{{- define "eerp.hs256SecretName" -}}
{{- .Values.auth.hs256.existingSecret | default (printf "%s-auth" (include "eerp.fullname" .)) -}}
{{- end -}}

{{/* The container's security settings, shared by the server and the migration Job. */}}
{{- define "eerp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "eerp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The database URL, from the operator's existing Secret. */}}
{{- define "eerp.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
{{- with .Values.server.modules }}
- name: EERP_MODULES
  value: {{ join "," . | quote }}
{{- end }}
{{- end -}}
