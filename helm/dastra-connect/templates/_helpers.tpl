{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "dc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-wide name prefix. */}}
{{- define "dc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "dc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "dc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dastra-connect
{{- end -}}

{{/* Selector labels of the whole release. */}}
{{- define "dc.releaseSelector" -}}
app.kubernetes.io/name: {{ include "dc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one connector: call with (dict "root" $ "name" $name). */}}
{{- define "dc.selector" -}}
{{ include "dc.releaseSelector" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Object name of one connector: call with (dict "root" $ "name" $name). */}}
{{- define "dc.cname" -}}
{{- printf "%s-%s" (include "dc.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "true" for the sink on NATS: a StatefulSet whose ordinal is the replica index (owned partitions). */}}
{{- define "dc.isNatsSink" -}}
{{- if and (eq .c.type "dastra_sink") (eq (.root.Values.bus.type | toString) "nats") -}}true{{- end -}}
{{- end -}}

{{/* "true" for the sink on Kafka with static membership: a StatefulSet, so that its pod names (the
group.instance.id) survive restarts. */}}
{{- define "dc.isStaticKafkaSink" -}}
{{- if and (eq .c.type "dastra_sink") (eq (.root.Values.bus.type | toString) "kafka") .c.staticMembership -}}true{{- end -}}
{{- end -}}

{{/* "true" when the connector runs as a StatefulSet. */}}
{{- define "dc.isSts" -}}
{{- if or (include "dc.isNatsSink" .) (include "dc.isStaticKafkaSink" .) -}}true{{- end -}}
{{- end -}}

{{/* Source connectors poll their system with a cursor and have no leader election: one replica. */}}
{{- define "dc.isSource" -}}
{{- if has .c.type (list "servicenow" "netbox" "coupa" "files" "salesforce") -}}true{{- end -}}
{{- end -}}

{{/* Seconds of a humantime duration written as <n>ms|s|m|h (the forms the chart accepts). */}}
{{- define "dc.seconds" -}}
{{- $d := . | toString -}}
{{- if regexMatch "^[0-9]+ms$" $d -}}{{- div (trimSuffix "ms" $d | atoi) 1000 -}}
{{- else if regexMatch "^[0-9]+s$" $d -}}{{- trimSuffix "s" $d | atoi -}}
{{- else if regexMatch "^[0-9]+m$" $d -}}{{- mul (trimSuffix "m" $d | atoi) 60 -}}
{{- else if regexMatch "^[0-9]+h$" $d -}}{{- mul (trimSuffix "h" $d | atoi) 3600 -}}
{{- else -}}{{- fail (printf "cannot read the duration %q: write it as <n>ms, <n>s, <n>m or <n>h" $d) -}}
{{- end -}}
{{- end -}}

{{/* The connector's replica count (validated: sources run one). */}}
{{- define "dc.replicas" -}}
{{- $r := default 1 .c.replicas | int -}}
{{- if and (include "dc.isSource" .) (gt $r 1) -}}
{{- fail (printf "connectors.%s.replicas: a %s source runs one replica (it polls with a cursor and has no leader election)" .name .c.type) -}}
{{- end -}}
{{- $r -}}
{{- end -}}

{{/* The whole config file of one connector: call with (dict "root" $ "name" $name "c" $c). */}}
{{- define "dc.config" -}}
{{- $v := .root.Values -}}
{{- if not $v.bus.type -}}{{- fail "bus: set the bus of the connectors (type: kafka with brokers, or type: nats with servers)" -}}{{- end -}}
{{- $bus := deepCopy $v.bus -}}
{{- if include "dc.isNatsSink" . -}}
{{- $_ := set $bus "replicas" (include "dc.replicas" . | int) -}}
{{- $_ := set $bus "replica_index" "${DASTRA_REPLICA_INDEX}" -}}
{{- end -}}
{{- if include "dc.isStaticKafkaSink" . -}}
{{- $_ := set $bus "group_instance_id" "${DASTRA_GROUP_INSTANCE_ID}" -}}
{{- end -}}
{{- $connector := merge (dict "type" .c.type) (deepCopy (default dict .c.config)) -}}
{{- $cfg := dict "bus" $bus "codec" $v.codec "topics" $v.topics "telemetry" $v.telemetry "admin" (dict "listen" (printf "0.0.0.0:%d" (int $v.adminPort))) "connectors" (dict .name $connector) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* A pod setting: the connector's own value, else the release-wide one. Call with (dict "c" $c "root" $ "key" "nodeSelector"). */}}
{{- define "dc.pod" -}}
{{- $own := default dict .c.pod -}}
{{- if hasKey $own .key -}}{{- toYaml (get $own .key) -}}{{- else -}}{{- toYaml (get .root.Values.pod .key) -}}{{- end -}}
{{- end -}}

{{/* The webhook receiver's port (from its `listen`, default 8081). */}}
{{- define "dc.webhookPort" -}}
{{- $listen := default "0.0.0.0:8081" ((default dict .c.config).listen) | toString -}}
{{- regexReplaceAll "^.*:" $listen "" -}}
{{- end -}}

{{/* Consumer group of a sink: bus.group_id, else the connector name. */}}
{{- define "dc.group" -}}
{{- default .name .root.Values.bus.group_id -}}
{{- end -}}

{{/* Service account of the pods. */}}
{{- define "dc.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}{{- default (include "dc.fullname" .) .Values.serviceAccount.name -}}{{- else -}}{{- default "default" .Values.serviceAccount.name -}}{{- end -}}
{{- end -}}
