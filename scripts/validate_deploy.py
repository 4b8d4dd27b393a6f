#!/usr/bin/env python3
"""Offline checks of the rendered Helm manifests (called by scripts/validate-deploy.sh).

    validate_deploy.py manifests FILE OUTDIR   CRD objects against deploy/crd-schemas/, built-in kinds
                                               left to kubernetes-validate; writes into OUTDIR the
                                               connector configs (ConfigMaps) and the PromQL of
                                               PrometheusRules and KEDA prometheus triggers as a rule
                                               file for `promtool check rules`.
    validate_deploy.py compose-configs FILE OUTDIR
                                               the connector configs docker-compose mounts, with
                                               container paths mapped back to the repo files.
    validate_deploy.py metric-names FILE...    every dastra_connect_* name the files use (dashboard,
                                               alerts, KEDA queries) is defined in the metric catalogue
                                               (core/src/telemetry/metrics.rs).
"""
import json
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_v1_podmonitor.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
}


def manifests(path, out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    builtin, rules, checked = [], [], []
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        name = f"{d['kind']}/{d['metadata']['name']}"
        if key in CRDS:
            schema = json.loads((ROOT / "deploy/crd-schemas" / CRDS[key]).read_text())
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(d), key=lambda e: list(e.path))
            if errors:
                for e in errors:
                    print(f"{path}: {name}: {'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
                sys.exit(1)
            checked.append(name)
        elif "." in (d.get("apiVersion") or "").split("/")[0] and d["apiVersion"].split("/")[0] not in (
                "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"):
            sys.exit(f"{path}: {name}: no schema for {key} in deploy/crd-schemas/")
        else:
            builtin.append(d)
        restricted(path, d)
        if d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {}):
            (out / f"{d['metadata']['name']}.yaml").write_text(d["data"]["config.yaml"])
        if d["kind"] == "PrometheusRule":
            rules.extend(d["spec"]["groups"])
        if d["kind"] == "ScaledObject":
            queries = [t["metadata"]["query"] for t in d["spec"]["triggers"] if t["type"] == "prometheus"]
            if queries:
                rules.append({"name": f"keda-{d['metadata']['name']}",
                              "rules": [{"record": f"keda:query{i}", "expr": q} for i, q in enumerate(queries)]})
    (out / "builtin.yaml").write_text(yaml.safe_dump_all(builtin))
    if rules:
        (out / "rules.yaml").write_text(yaml.safe_dump({"groups": rules}))
    print(f"  CRD objects valid against deploy/crd-schemas: {', '.join(checked) or 'none'}")


def restricted(path, d):
    """Pods follow the "restricted" Pod Security Standard; connector workloads also have probes and
    restart on config change."""
    kind = d["kind"]
    if kind in ("Deployment", "StatefulSet", "Job"):
        tpl = d["spec"]["template"]
    elif kind == "Pod":
        tpl = d
    else:
        return
    name = f"{kind}/{d['metadata']['name']}"
    spec = tpl["spec"]
    psc = spec.get("securityContext", {})
    problems = []
    if psc.get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot is not true")
    if psc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("pod seccompProfile is not RuntimeDefault")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{c['name']}: capabilities do not drop ALL")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{c['name']}: root filesystem is writable")
        if sc.get("privileged"):
            problems.append(f"{c['name']}: privileged")
        if kind in ("Deployment", "StatefulSet"):
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"{c['name']}: no {probe}")
    if kind in ("Deployment", "StatefulSet") and "checksum/config" not in tpl["metadata"].get("annotations", {}):
        problems.append("no checksum/config annotation on the pod template")
    if problems:
        sys.exit(f"{path}: {name}: " + "; ".join(problems))


def compose_configs(path, out):
    """Each `run --config` of a compose service: the mounted file, its `*_file` paths mapped to the repo."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    compose = yaml.safe_load(pathlib.Path(path).read_text())
    secrets = {k: v["file"] for k, v in compose.get("secrets", {}).items()}
    n = 0
    for name, svc in compose["services"].items():
        cmd = svc.get("command") or []
        if "--config" not in cmd:
            continue
        target = cmd[cmd.index("--config") + 1]
        mounts = {}
        for v in svc.get("volumes", []):
            host, container = v.split(":")[:2]
            mounts[container] = (ROOT / host).resolve()
        for s in svc.get("secrets", []):
            mounts[f"/run/secrets/{s}"] = (ROOT / secrets[s]).resolve()
        if target not in mounts:
            sys.exit(f"{path}: service {name}: --config {target} is not a mounted file")
        text = mounts[target].read_text()

        def local(m):
            p = m.group(2)
            for container, host in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
                if p == container or p.startswith(container + "/"):
                    mapped = pathlib.Path(str(host) + p[len(container):])
                    if not mapped.exists():
                        sys.exit(f"{path}: service {name}: {p} is mounted from {mapped}, which does not exist")
                    return m.group(1) + str(mapped)
            sys.exit(f"{path}: service {name}: {m.group(0).strip()} is not inside a mounted volume or secret")

        text = re.sub(r"(_file: *)(/[^\s,}\]]+)", local, text)
        for p in re.findall(r"path: *(/data/[^\s,}\]]+)", text):
            if not any(p == c or p.startswith(c + "/") for c in mounts):
                sys.exit(f"{path}: service {name}: {p} is not inside a mounted volume")
        (out / f"{name}.yaml").write_text(text)
        n += 1
    if n == 0:
        sys.exit(f"{path}: no service runs `--config`")


def metric_names(*files):
    catalogue = (ROOT / "core/src/telemetry/metrics.rs").read_text()
    defined = {"dastra_connect_" + n for n in re.findall(r'(?:counter|gauge)\(\s*&r,\s*"([a-z_]+)"', catalogue)}
    defined |= set(re.findall(r'"(dastra_connect_[a-z_]+)"', catalogue))
    for h in [d for d in defined if d.endswith("_seconds")]:
        defined |= {h + "_bucket", h + "_sum", h + "_count"}
    used = {}
    for f in files:
        for n in re.findall(r"dastra_connect_[a-z_]+", pathlib.Path(f).read_text()):
            used.setdefault(n, f)
    unknown = {n: f for n, f in used.items() if n not in defined}
    if unknown:
        sys.exit("metrics used but not in core/src/telemetry/metrics.rs: " + ", ".join(f"{n} ({f})" for n, f in sorted(unknown.items())))
    if len(defined) < 15:
        sys.exit(f"only {len(defined)} metric names read from metrics.rs: the parser is out of date")
    print(f"  {len(used)} metric names used, all defined ({len(defined)} in the catalogue)")


if __name__ == "__main__":
    {"manifests": manifests, "compose-configs": compose_configs, "metric-names": metric_names}[sys.argv[1]](*sys.argv[2:])
