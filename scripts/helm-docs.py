#!/usr/bin/env python3
"""Generates the Helm chart's values.schema.json and the values table of its README.

values.schema.json = the chart's own keys (declared below) + the connector config types of
schemas/config/dastra-connect.schema.json (generated from the Rust types), transformed so that a
secret can only be given as `<key>_file` (a path into a mounted Secret), never as a value.
`--check` fails when a checked-in file differs (scripts/validate-deploy.sh runs it)."""
import copy
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "helm/dastra-connect"
CONFIG_SCHEMA = ROOT / "schemas/config/dastra-connect.schema.json"
ENV_REF = r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$"


def is_secret(s):
    if not isinstance(s, dict):
        return False
    if s.get("$ref") == "#/$defs/Secret":
        return True
    return any(is_secret(x) for x in s.get("anyOf", []) + s.get("oneOf", []))


def secrets_as_files(node):
    """Every `key: Secret` becomes `key_file: path`; lists of secrets take `${ENV}` references only."""
    if isinstance(node, list):
        for x in node:
            secrets_as_files(x)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if isinstance(props, dict):
        for key in list(props):
            s = props[key]
            if is_secret(s):
                desc = s.get("description", "")
                props[key + "_file"] = {
                    "type": "string", "pattern": "^/",
                    "description": f"Path of a file (a key of a mounted Secret) holding it. {desc}".strip()}
                del props[key]
                if key in node.get("required", []):
                    node["required"] = [key + "_file" if r == key else r for r in node["required"]]
            elif isinstance(s, dict) and s.get("type") == "array" and is_secret(s.get("items")):
                s["items"] = {"type": "string", "pattern": ENV_REF,
                              "description": "`${ENV_VAR}` set from a Secret (pod.env valueFrom.secretKeyRef)"}
    for v in node.values():
        secrets_as_files(v)


def connector_variants(defs):
    out = {}
    for variant in defs["ConnectorConfig"]["oneOf"]:
        tag = variant["properties"]["type"]
        name = tag.get("const") or tag["enum"][0]
        v = copy.deepcopy(variant)
        del v["properties"]["type"]
        v["required"] = [r for r in v.get("required", []) if r != "type"]
        out[name] = v
    return out


def bus_variants(defs):
    """The bus section as values: as in the config file, without the per-pod keys the chart sets
    (NATS `replicas`/`replica_index`; Kafka `group_instance_id`, one per pod)."""
    variants = []
    for v in copy.deepcopy(defs["BusConfig"]["oneOf"]):
        for k in ("replica_index", "replicas", "group_instance_id"):
            v["properties"].pop(k, None)
        variants.append(v)
    # Empty by default (nothing to render without connectors); the templates require it then.
    variants.append({"type": "object", "maxProperties": 0})
    return {"oneOf": variants}


OBJ = {"type": "object"}
STR = {"type": "string"}
LIST = {"type": "array"}


def p(schema, desc, default=None):
    s = dict(schema)
    s["description"] = desc
    if default is not None:
        s["default"] = default
    return s


POD = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "annotations": p(OBJ, "Annotations of the pods."),
        "labels": p(OBJ, "Labels of the pods."),
        "env": p(LIST, "Extra environment variables (e.g. `valueFrom.secretKeyRef` for a `${VAR}` in a config)."),
        "envFrom": p(LIST, "Extra `envFrom` sources (ConfigMaps, Secrets)."),
        "extraVolumes": p(LIST, "Extra volumes of the pods."),
        "extraVolumeMounts": p(LIST, "Extra volume mounts of the connector container."),
        "nodeSelector": p(OBJ, "Node selector."),
        "tolerations": p(LIST, "Tolerations."),
        "affinity": p(OBJ, "Affinity."),
        "priorityClassName": p(STR, "Priority class of the pods."),
        "topologySpread": p({"type": "boolean"}, "Spread a connector's replicas over nodes and zones (soft constraints)."),
        "securityContext": p(OBJ, "Pod security context (restricted by default: non-root 10001, seccomp RuntimeDefault)."),
        "containerSecurityContext": p(OBJ, "Container security context (read-only root fs, no privilege escalation, drop ALL)."),
        "terminationGracePeriodSeconds": p({"type": "integer", "minimum": 1}, "SIGTERM to SIGKILL; a sink gets at least its `shutdown_grace` + 15 s."),
        "resources": p(OBJ, "Resources of the connector container."),
    },
}

AUTOSCALING = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "hpa": {"type": "object", "additionalProperties": False, "description": "A CPU-based HorizontalPodAutoscaler (Deployments only; not with keda).",
                "properties": {"enabled": p({"type": "boolean"}, "Render the HPA.", False),
                               "minReplicas": p({"type": "integer", "minimum": 1}, "Lowest replica count.", 1),
                               "maxReplicas": p({"type": "integer", "minimum": 1}, "Highest replica count."),
                               "targetCPUUtilizationPercentage": p({"type": "integer", "minimum": 1, "maximum": 100}, "CPU target.", 70)},
                "if": {"properties": {"enabled": {"const": True}}, "required": ["enabled"]}, "then": {"required": ["maxReplicas"]}},
        "keda": {"type": "object", "additionalProperties": False,
                 "description": "A KEDA ScaledObject for a dastra_sink (not with hpa). Kafka: consumer lag, capped at the partitions, held while the quota is saturated. NATS: 0 or `replicas` pods.",
                 "properties": {
                     "enabled": p({"type": "boolean"}, "Render the ScaledObject (fails when the cluster has no keda.sh/v1alpha1).", False),
                     "minReplicaCount": p({"type": "integer", "minimum": 0}, "Kafka: lowest count (default 1). NATS: 0 (scale to zero) or `replicas`."),
                     "maxReplicaCount": p({"type": "integer", "minimum": 1}, "Kafka: highest count, at most the partitions per topic. NATS: always `replicas`."),
                     "pollingInterval": p({"type": "integer", "minimum": 1}, "Seconds between checks.", 30),
                     "cooldownPeriod": p({"type": "integer", "minimum": 0}, "Seconds before scaling to zero.", 300),
                     "kafka": {"type": "object", "additionalProperties": False, "description": "Kafka lag trigger.",
                               "properties": {"lagThreshold": p({"type": "integer", "minimum": 1}, "Messages of lag per replica.", 1000),
                                              "partitions": p({"type": "integer", "minimum": 1}, "Partitions per topic (default bus.topic_partitions or 6): the replica cap."),
                                              "authenticationRef": p(STR, "A KEDA TriggerAuthentication with the broker credentials (SASL/TLS).")}},
                     "nats": {"type": "object", "additionalProperties": False, "description": "NATS JetStream triggers (one per partition consumer).",
                              "properties": {"monitoringEndpoint": p(STR, "host:port of NATS monitoring (8222)."),
                                             "account": p(STR, "JetStream account.", "$G")}},
                     "quotaGate": {"type": "object", "additionalProperties": False,
                                   "description": "Kafka: do not add pods while dastra_connect_quota_saturated is 1 (replicas share one quota).",
                                   "properties": {"enabled": p({"type": "boolean"}, "Gate the lag trigger on the quota.", True),
                                                  "prometheusAddress": p(STR, "Prometheus URL KEDA queries (e.g. http://prometheus-operated.monitoring:9090).")}},
                 }},
    },
}


def connector_schema(variants):
    base = {
        "type": "object", "additionalProperties": False, "required": ["type"],
        "properties": {
            "type": p({"enum": sorted(variants)}, "Connector type (the `type:` of the config file)."),
            "enabled": p({"type": "boolean"}, "Render this connector.", True),
            "replicas": p({"type": "integer", "minimum": 1}, "Replicas (sources: 1). On NATS the sink's StatefulSet ordinals 0..replicas-1 own p % replicas.", 1),
            "staticMembership": p({"type": "boolean"}, "A dastra_sink on Kafka: run as a StatefulSet whose pod names are the replicas' `group.instance.id` (a restarted pod takes its partitions back at once; a pod removed for good keeps them until `session.timeout.ms`).", False),
            "resources": p(OBJ, "Resources (default: pod.resources)."),
            "config": p(OBJ, "The connector's config, as under `connectors.<name>` of the config file, without `type`. Secrets as `<key>_file`."),
            "pod": dict(POD, description="Pod settings of this connector (override the release-wide `pod`)."),
            "autoscaling": dict(AUTOSCALING, description="HPA or KEDA (not both)."),
        },
        "allOf": [{"if": {"properties": {"type": {"const": t}}}, "then": {"properties": {"config": {"$ref": f"#/$defs/connector_{t}"}}}}
                  for t in sorted(variants)],
    }
    return base


def build():
    cfg = json.loads(CONFIG_SCHEMA.read_text())
    defs = copy.deepcopy(cfg["$defs"])
    variants = connector_variants(defs)
    for name, v in variants.items():
        defs[f"connector_{name}"] = v
    defs["values_bus"] = bus_variants(defs)
    secrets_as_files(defs)
    props = cfg["properties"]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dastra-connect Helm chart values",
        "type": "object", "additionalProperties": False,
        "properties": {
            "image": {"type": "object", "additionalProperties": False, "description": "The dastra-connect image.",
                      "properties": {"repository": p(STR, "Image repository.", "dastra-connect"),
                                     "tag": p(STR, "Image tag (default: the chart's appVersion)."),
                                     "pullPolicy": p({"enum": ["Always", "IfNotPresent", "Never"]}, "Pull policy.", "IfNotPresent")}},
            "imagePullSecrets": p(LIST, "Pull secrets of the pods."),
            "nameOverride": p(STR, "Replaces the chart name in object names."),
            "fullnameOverride": p(STR, "Replaces the release-chart prefix of object names."),
            "bus": dict(copy.deepcopy(defs["values_bus"]), description="The `bus:` section of every config (kafka or nats). On NATS the chart sets `replicas`/`replica_index` itself. Secrets as `<key>_file`."),
            "codec": dict(copy.deepcopy(props["codec"]), description="The `codec:` section of every config."),
            "topics": dict(copy.deepcopy(props["topics"]), description="The `topics:` section of every config."),
            "telemetry": dict(copy.deepcopy(props["telemetry"]), description="The `telemetry:` section of every config."),
            "secretMounts": p({"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["name", "secretName"],
                                                          "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                                                                         "secretName": {"type": "string", "minLength": 1}}}},
                              "Existing Secrets mounted at /var/run/secrets/dastra-connect/<name>/<key> in every pod."),
            "connectors": p({"type": "object", "propertyNames": {"pattern": "^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$"},
                             "additionalProperties": {"$ref": "#/$defs/values_connector"}},
                            "Connectors by instance name (lower-case DNS label): each a workload of its own."),
            "adminPort": p({"type": "integer", "minimum": 1, "maximum": 65535}, "Admin port (/metrics, /healthz, /readyz, /status).", 9090),
            "pod": dict(copy.deepcopy(POD), description="Pod settings of every connector."),
            "serviceAccount": {"type": "object", "additionalProperties": False, "description": "Service account of the pods.",
                               "properties": {"create": p({"type": "boolean"}, "Create one.", True), "name": p(STR, "Its name."),
                                              "annotations": p(OBJ, "Its annotations.")}},
            "secretChecksum": p({"type": "boolean"}, "Restart pods when a mounted Secret changes (checksum read with `lookup`).", False),
            "podDisruptionBudget": {"type": "object", "additionalProperties": False, "description": "PDB of connectors with more than one replica.",
                                    "properties": {"maxUnavailable": p({"type": ["integer", "string"]}, "Pods down at once.", 1)}},
            "monitoring": {"type": "object", "additionalProperties": False, "description": "Prometheus operator objects and the Grafana dashboard.",
                           "properties": {
                               "podMonitor": {"type": "object", "additionalProperties": False, "description": "A PodMonitor for the admin port.",
                                              "properties": {"enabled": p({"type": "boolean"}, "Render it.", False), "interval": p(STR, "Scrape interval.", "30s"), "labels": p(OBJ, "Its labels.")}},
                               "serviceMonitor": {"type": "object", "additionalProperties": False, "description": "A ServiceMonitor instead of the PodMonitor.",
                                                  "properties": {"enabled": p({"type": "boolean"}, "Render it.", False), "interval": p(STR, "Scrape interval.", "30s"), "labels": p(OBJ, "Its labels.")}},
                               "prometheusRule": {"type": "object", "additionalProperties": False, "description": "Alerts (see README: Operations).",
                                                  "properties": {"enabled": p({"type": "boolean"}, "Render the PrometheusRule.", False), "labels": p(OBJ, "Its labels."),
                                                                 "lagMessages": p({"type": "integer", "minimum": 0}, "Lag above which a growing lag alerts.", 1000),
                                                                 "lagFor": p(STR, "How long the lag must grow.", "15m"),
                                                                 "dlqPerMinute": p({"type": "number", "minimum": 0}, "DLQ events per minute that alert.", 0),
                                                                 "parkedFor": p(STR, "How long keys may stay parked.", "15m"),
                                                                 "quotaSaturatedFor": p(STR, "How long the quota may stay saturated.", "30m"),
                                                                 "kubeStateMetrics": p({"type": "boolean"}, "Alert on sink pods not ready (kube-state-metrics).", True)}},
                               "grafanaDashboard": {"type": "object", "additionalProperties": False, "description": "The dashboard as a ConfigMap for Grafana's sidecar.",
                                                    "properties": {"enabled": p({"type": "boolean"}, "Render it.", False), "labels": p(OBJ, "Labels the sidecar looks for.")}},
                           }},
            "extraObjects": p(LIST, "Extra objects rendered as they are (strings are templates)."),
            "tests": {"type": "object", "additionalProperties": False, "description": "`helm test`.",
                      "properties": {"enabled": p({"type": "boolean"}, "Render the readiness test pod.", True)}},
        },
        "$defs": dict(defs, values_connector=connector_schema(variants)),
    }
    return schema


def values_default(path):
    """The value values.yaml gives `path` (dotted), if any."""
    import yaml  # PyYAML: in scripts/tools.sh's venv
    node = yaml.safe_load((CHART / "values.yaml").read_text())
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def rows(schema, prefix="", from_values=True):
    """(key, type, default, description) for the README table; the default is values.yaml's."""
    out = []
    for key, s in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        typ = s.get("type") or ("enum" if "enum" in s else "object" if ("oneOf" in s or "$ref" in s) else "")
        if isinstance(typ, list):
            typ = " \\| ".join(typ)
        if "enum" in s:
            typ = " \\| ".join(f"`{e}`" for e in s["enum"])
        given = values_default(path) if from_values else None
        if given not in (None, "", [], {}):
            default = json.dumps(given)
        else:
            default = json.dumps(s["default"]) if "default" in s else ""
        out.append((path, typ, default, s.get("description", "").replace("\n", " ").replace("|", "\\|")))
        if s.get("type") == "object" and "properties" in s and key not in ("codec", "topics", "telemetry"):
            out.extend(rows(s, path + ".", from_values))
    return out


def readme(schema):
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for path, typ, default, desc in rows(schema):
        lines.append(f"| `{path}` | {typ} | {('`' + default + '`') if default else ''} | {desc} |")
    lines.append("")
    lines.append("Each entry of `connectors.<name>`:")
    lines.append("")
    lines.append("| key | type | default | description |")
    lines.append("|---|---|---|---|")
    for path, typ, default, desc in rows(schema["$defs"]["values_connector"], from_values=False):
        lines.append(f"| `{path}` | {typ} | {('`' + default + '`') if default else ''} | {desc} |")
    return "\n".join(lines) + "\n"


def main():
    schema = build()
    outputs = {CHART / "values.schema.json": json.dumps(schema, indent=2) + "\n"}
    tmpl = (CHART / "README.md.tmpl").read_text()
    outputs[CHART / "README.md"] = tmpl.replace("<!-- VALUES TABLE -->\n", readme(schema))
    stale = [str(f.relative_to(ROOT)) for f, text in outputs.items() if not f.exists() or f.read_text() != text]
    if "--check" in sys.argv:
        if stale:
            sys.exit(f"stale: {', '.join(stale)}: run python3 scripts/helm-docs.py")
        return
    for f, text in outputs.items():
        f.write_text(text)


if __name__ == "__main__":
    main()
