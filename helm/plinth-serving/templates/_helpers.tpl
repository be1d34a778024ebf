{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "plinth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name `<release>-<chart>` (or the release name when it already holds the chart name), 63 characters at most. */}}
{{- define "plinth.fullname" -}}
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

{{/* Name of one track's Deployment and Service; the suffix is kept whole so stable and canary never collide. */}}
{{- define "plinth.trackName" -}}
{{- printf "%s-%s" (include "plinth.fullname" .root | trunc 55 | trimSuffix "-") .track }}
{{- end }}

{{- define "plinth.controllerName" -}}
{{- printf "%s-rollout" (include "plinth.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The ConfigMap the rollout controller creates and owns (stableVersion, status); the chart never renders it. */}}
{{- define "plinth.stateConfigMapName" -}}
{{- printf "%s-rollout-state" (include "plinth.fullname" . | trunc 49 | trimSuffix "-") }}
{{- end }}

{{- define "plinth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "plinth.labels" -}}
helm.sh/chart: {{ include "plinth.chart" . }}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/version: {{ include "plinth.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: plinth
{{- end }}

{{/* Labels that select; never change them after the first install (Deployment selectors are immutable). */}}
{{- define "plinth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plinth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of one serving track: `dict "root" $ "track" "stable"`. */}}
{{- define "plinth.trackSelectorLabels" -}}
{{ include "plinth.selectorLabels" .root }}
app.kubernetes.io/component: serving
plinth.dev/track: {{ .track }}
{{- end }}

{{- define "plinth.controllerSelectorLabels" -}}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/component: rollout-controller
{{- end }}

{{- define "plinth.serviceAccountName" -}}
{{- include "plinth.fullname" . }}
{{- end }}

{{- define "plinth.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* A digest, when given, is what the kubelet pulls (the tag stays readable in front of it). */}}
{{- define "plinth.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "plinth.imageTag" .) }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* Pod-level security context of the "restricted" Pod Security Standard; uid 10001 is the image's user. */}}
{{- define "plinth.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "plinth.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* MLflow connection of one login, `dict "root" $ "login" <a credentials Secret value>`: the URI from values or a Secret, credentials only from an existing Secret. With "plainUri" true (the serving pods) always `trackingUri`: mlflow.uriSecret may carry another login's credentials. */}}
{{- define "plinth.mlflowEnv" -}}
{{- $mlflow := .root.Values.mlflow }}
{{- if and $mlflow.uriSecret.name (not .plainUri) }}
- name: MLFLOW_TRACKING_URI
  valueFrom:
    secretKeyRef:
      name: {{ $mlflow.uriSecret.name }}
      key: {{ $mlflow.uriSecret.key }}
{{- else }}
- name: MLFLOW_TRACKING_URI
  value: {{ $mlflow.trackingUri | quote }}
{{- end }}
{{- with .login }}
{{- if .name }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .usernameKey }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* The controller's login (EDIT on the model), never the serving pods' (READ): refused when they have one and it has none of its own. */}}
{{- define "plinth.controllerMlflowEnv" -}}
{{- $serving := .Values.mlflow.credentialsSecret.name }}
{{- $controller := .Values.mlflow.controllerCredentialsSecret.name }}
{{- if and $serving (or (not $controller) (eq $serving $controller)) }}
{{- fail "mlflow.controllerCredentialsSecret.name is required with the rollout controller while mlflow.credentialsSecret.name is set, and must name another Secret: the serving pods' login is READ-only on the model, the controller's needs EDIT to move aliases and tag versions, e.g. --set mlflow.controllerCredentialsSecret.name=mlflow-controller (manifests/README.md: Two registry logins)" }}
{{- end }}
{{- include "plinth.mlflowEnv" (dict "root" . "login" .Values.mlflow.controllerCredentialsSecret) }}
{{- end }}

{{/* Scheduling shared by every pod: node pool, tolerations, affinity. */}}
{{- define "plinth.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The controller needs something to steer: a canary track and a route whose weights it patches. */}}
{{- define "plinth.controllerEnabled" -}}
{{- if and .Values.rolloutController.enabled .Values.canary.enabled .Values.httpRoute.enabled }}true{{ end }}
{{- end }}

{{/* Egress to the cluster DNS, on each of its ports over UDP and TCP. */}}
{{- define "plinth.egressDns" -}}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dnsNamespaceLabels | nindent 10 }}
      {{- with .Values.networkPolicy.dnsPodLabels }}
      podSelector:
        matchLabels:
          {{- toYaml . | nindent 10 }}
      {{- end }}
  ports:
    {{- range .Values.networkPolicy.dnsPorts }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}

{{/* Egress every plinth pod needs: cluster DNS and the MLflow tracking server. */}}
{{- define "plinth.egressDnsAndMlflow" -}}
{{ include "plinth.egressDns" . }}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.mlflowNamespaceLabels | nindent 10 }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.mlflowPodLabels | nindent 10 }}
  ports:
    - port: {{ .Values.networkPolicy.mlflowPort }}
      protocol: TCP
{{- end }}

{{/* The controller's ValidatingAdmissionPolicy and its binding are cluster-scoped: the namespace is in the name. */}}
{{- define "plinth.admissionPolicyName" -}}
{{- printf "%s-%s" .Release.Namespace (include "plinth.controllerName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ConfigMap holding the public key that verifies the registry's model signatures. */}}
{{- define "plinth.signingName" -}}
{{- printf "%s-signing" (include "plinth.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The public key, or one message saying where it comes from when signatures are required without it. */}}
{{- define "plinth.signingKey" -}}
{{- if and .Values.signing.required (not (trim .Values.signing.publicKey)) }}
{{- fail "signing.publicKey is required while signing.required is true: the PEM public key of the private key `private.pem` in the Secret plinth-signing-key (namespace plinth-signing) that the signer service signs with, e.g. `openssl ec -in private.pem -pubout -out public.pem` then --set-file signing.publicKey=public.pem (or --set signing.required=false to serve unsigned models)" }}
{{- end }}
{{- trim .Values.signing.publicKey }}
{{- end }}

{{/* Signature check of the model files (PLINTH_VERIFY_KEY, PLINTH_REQUIRE_SIGNATURE) on a container that loads them. */}}
{{- define "plinth.signingEnv" -}}
{{- if include "plinth.signingKey" . }}
- name: PLINTH_VERIFY_KEY
  value: /etc/plinth/signing/public.pem
{{- end }}
- name: PLINTH_REQUIRE_SIGNATURE
  value: {{ ternary "true" "false" .Values.signing.required | quote }}
{{- end }}

{{- define "plinth.signingMount" -}}
{{- if include "plinth.signingKey" . }}
- name: signing
  mountPath: /etc/plinth/signing
  readOnly: true
{{- end }}
{{- end }}

{{- define "plinth.signingVolume" -}}
{{- if include "plinth.signingKey" . }}
- name: signing
  configMap:
    name: {{ include "plinth.signingName" . }}
{{- end }}
{{- end }}

{{/* Pod annotation that restarts the pods when the public key changes. */}}
{{- define "plinth.signingChecksum" -}}
checksum/signing: {{ include "plinth.signingKey" . | sha256sum }}
{{- end }}

{{/* The retraining trigger receiver (pipelines/triggers/receive.py): an Alertmanager webhook in the components image. */}}
{{- define "plinth.triggerReceiverName" -}}
{{- printf "%s-trigger-receiver" (include "plinth.fullname" . | trunc 46 | trimSuffix "-") }}
{{- end }}

{{- define "plinth.triggerReceiverSelectorLabels" -}}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/component: trigger-receiver
{{- end }}

{{/* The components image (pipelines/images.py COMPONENTS): its version tag is `<appVersion>-python3.11`; a digest, when given, is what the kubelet pulls. */}}
{{- define "plinth.triggerReceiverImage" -}}
{{- $image := .Values.triggerReceiver.image }}
{{- printf "%s:%s" $image.repository ($image.tag | default (printf "%s-python3.11" .Chart.AppVersion)) }}
{{- with $image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* The receiver's login (EDIT on the model: it writes the trigger history tags), never the serving pods' (READ). */}}
{{- define "plinth.triggerReceiverMlflowEnv" -}}
{{- $serving := .Values.mlflow.credentialsSecret.name }}
{{- $receiver := .Values.triggerReceiver.mlflowCredentialsSecret.name }}
{{- if and $serving (or (not $receiver) (eq $serving $receiver)) }}
{{- fail "triggerReceiver.mlflowCredentialsSecret.name is required with the trigger receiver while mlflow.credentialsSecret.name is set, and must name another Secret: the serving pods' login is READ-only on the model, the receiver's needs EDIT on the plinth-triggers experiment to write its trigger history, e.g. --set triggerReceiver.mlflowCredentialsSecret.name=mlflow-triggers" }}
{{- end }}
{{- include "plinth.mlflowEnv" (dict "root" . "login" .Values.triggerReceiver.mlflowCredentialsSecret) }}
{{- end }}

{{/* The live-quality exporter: one Deployment reading the prediction store (feedback on only). */}}
{{- define "plinth.liveQualityName" -}}
{{- printf "%s-live-quality" (include "plinth.fullname" . | trunc 50 | trimSuffix "-") }}
{{- end }}

{{- define "plinth.liveQualitySelectorLabels" -}}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/component: live-quality
{{- end }}

{{/* PLINTH_PREDICTION_STORE (from the Secret named in values, never the URL itself) and the age bound. */}}
{{- define "plinth.predictionStoreEnv" -}}
{{- $store := .Values.feedback.store }}
{{- $name := required "feedback.store.secretName is required with feedback.enabled: an existing Secret holding the postgresql:// URL of the shared prediction store (see the chart README, \"Prediction store\")" $store.secretName }}
- name: PLINTH_PREDICTION_STORE
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $store.secretKey }}
- name: PLINTH_FEEDBACK_MAX_AGE
  value: {{ .Values.feedback.maxAge | quote }}
{{- end }}

{{/* Egress to the prediction store's PostgreSQL (feedback on and NetworkPolicies on). */}}
{{- define "plinth.egressStore" -}}
{{- $store := .Values.feedback.store }}
{{- if not $store.peers }}
{{- fail "feedback.store.peers is required with feedback.enabled and networkPolicy.enabled: where PostgreSQL runs, e.g. --set-json 'feedback.store.peers=[{\"namespaceSelector\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"plinth-platform\"}},\"podSelector\":{\"matchLabels\":{\"cnpg.io/cluster\":\"plinth-predictions\"}}}]' (or an ipBlock for a managed database)" }}
{{- end }}
- to:
    {{- toYaml $store.peers | nindent 4 }}
  ports:
    - port: {{ $store.port }}
      protocol: TCP
{{- end }}

{{/* Egress to the payload archive's object store, when one is named. */}}
{{- define "plinth.egressArchive" -}}
{{- $archive := .Values.feedback.archive }}
{{- if not $archive.peers }}
{{- fail "feedback.archive.peers is required with feedback.archive.url and networkPolicy.enabled: where the object store is, e.g. --set-json 'feedback.archive.peers=[{\"namespaceSelector\":{\"matchLabels\":{\"kubernetes.io/metadata.name\":\"kubeflow\"}},\"podSelector\":{\"matchLabels\":{\"app\":\"minio\"}}}]' --set feedback.archive.port=9000 for Kubeflow's MinIO, or an ipBlock of your cloud store's ranges" }}
{{- end }}
- to:
    {{- toYaml $archive.peers | nindent 4 }}
  ports:
    - port: {{ $archive.port }}
      protocol: TCP
{{- end }}

{{/* The experiment's decision loop (serving/experiments/cluster.py): its Deployment, spec ConfigMap and policy. */}}
{{- define "plinth.experimentName" -}}
{{- printf "%s-experiment" (include "plinth.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{- define "plinth.experimentSelectorLabels" -}}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/component: experiment
{{- end }}

{{/* Whether the decision loop runs: an experiment, with its decision on; refused without what it reads. */}}
{{- define "plinth.experimentDecision" -}}
{{- if and .Values.experiment.enabled .Values.experiment.decision.enabled }}
{{- if not .Values.feedback.enabled }}
{{- fail "experiment.decision.enabled: needs feedback.enabled (the outcomes are the labels or values posted to /feedback, read from the shared prediction store), or set experiment.decision.enabled=false to route only" }}
{{- end }}
{{- if not .Values.experiment.startedAt }}
{{- fail "experiment.startedAt is required with experiment.decision.enabled: when the experiment began, in Unix seconds, e.g. --set experiment.startedAt=$(date +%s); keep it for the experiment's life (a restarted loop counts from it)" }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/* The loop's login (EDIT on the plinth-experiments experiment to record), never the serving pods' (READ). */}}
{{- define "plinth.experimentMlflowEnv" -}}
{{- $serving := .Values.mlflow.credentialsSecret.name }}
{{- $login := .Values.experiment.decision.mlflowCredentialsSecret }}
{{- if and $serving (or (not $login.name) (eq $serving $login.name)) }}
{{- fail "experiment.decision.mlflowCredentialsSecret.name is required with the decision loop while mlflow.credentialsSecret.name is set, and must name another Secret: the serving pods' login is READ-only, the loop's needs EDIT on the plinth-experiments experiment to record its decision, e.g. --set experiment.decision.mlflowCredentialsSecret.name=mlflow-experiments" }}
{{- end }}
{{- include "plinth.mlflowEnv" (dict "root" . "login" $login) }}
{{- end }}

{{/* The variant a track serves, as the experiment spec names it: its pinned version, else its alias. */}}
{{- define "plinth.experimentVariant" -}}
{{- $model := .root.Values.model }}
{{- $pin := ternary $model.stable.version $model.version (eq .track "stable") }}
{{- $alias := ternary $model.stable.alias $model.canary.alias (eq .track "stable") }}
{{- $variant := dict "name" .variant.name "weight" .variant.weight }}
{{- if $pin }}
{{- $_ := set $variant "version" (toString $pin) }}
{{- else }}
{{- $_ := set $variant "alias" $alias }}
{{- end }}
{{- toJson $variant }}
{{- end }}
