#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/dastra-connect.json (the Grafana dashboard of docker-compose and
of the Helm chart's optional dashboard ConfigMap). The panels are declared here once, so the JSON stays
consistent; `--check` fails when the checked-in JSON differs (run by scripts/validate-deploy.sh)."""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# docker-compose mounts the first; the Helm chart ships the second (monitoring.grafanaDashboard).
OUTS = [ROOT / "deploy/grafana/dashboards/dastra-connect.json", ROOT / "helm/dastra-connect/files/dastra-connect.json"]
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'connector=~"$connector"'


def panel(pid, title, exprs, x, y, unit="short", kind="timeseries", w=12, h=8, description="", thresholds=None):
    targets = [{"datasource": DS, "expr": e, "legendFormat": legend, "refId": chr(65 + i)}
               for i, (e, legend) in enumerate(exprs)]
    p = {"id": pid, "type": kind, "title": title, "description": description, "datasource": DS,
         "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {}}
    if thresholds:
        p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": thresholds}
        p["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return p


PANELS = [
    panel(1, "Events per second", [
        (f'sum by (connector) (rate(dastra_connect_events_published_total{{{SEL}}}[$__rate_interval]))', "{{connector}} published"),
        (f'sum by (connector) (rate(dastra_connect_events_consumed_total{{{SEL}}}[$__rate_interval]))', "{{connector}} consumed"),
        (f'sum by (connector) (rate(dastra_connect_events_applied_total{{{SEL}}}[$__rate_interval]))', "{{connector}} applied"),
        (f'sum by (connector) (rate(dastra_connect_events_skipped_total{{{SEL}}}[$__rate_interval]))', "{{connector}} skipped"),
    ], 0, 0, unit="ops", description="Sources publish, the sink consumes; applied = reached Dastra, skipped = no request needed."),
    panel(2, "Dastra requests per second by status", [
        (f'sum by (status) (rate(dastra_connect_dastra_requests_total{{{SEL}}}[$__rate_interval]))', "{{status}}"),
    ], 12, 0, unit="reqps"),
    panel(3, "Dastra quota: requests per minute used vs limit", [
        (f'sum(rate(dastra_connect_dastra_requests_total{{{SEL}}}[1m])) * 60', "used (req/min)"),
        ('vector($quota_limit)', "limit (req/min)"),
    ], 0, 8, unit="short", description="Replicas share one quota: when used meets the limit, more pods do not help.",
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 500}]),
    panel(4, "Quota tokens available and saturation", [
        (f'sum by (connector, window) (dastra_connect_quota_tokens{{{SEL}}})', "{{connector}} tokens ({{window}})"),
        (f'max by (connector) (dastra_connect_quota_saturated{{{SEL}}})', "{{connector}} saturated"),
    ], 12, 8, description="dastra_connect_quota_saturated = 1 while the quota, not the work, holds requests back."),
    panel(5, "429 answers from Dastra", [
        (f'sum by (connector) (increase(dastra_connect_dastra_throttled_total{{{SEL}}}[$__rate_interval]))', "{{connector}}"),
    ], 0, 16, w=8, description="Should stay at 0: the limiter keeps the process under Dastra's windows."),
    panel(6, "Dead-lettered events", [
        (f'sum by (connector, reason) (increase(dastra_connect_dlq_events_total{{{SEL}}}[$__rate_interval]))', "{{connector}} {{reason}}"),
    ], 8, 16, w=8, description="`dastra-connect dlq list` shows them, `dlq redrive` re-sends them."),
    panel(7, "Consumer lag (messages)", [
        (f'sum by (connector) (dastra_connect_consumer_lag_messages{{{SEL}}})', "{{connector}}"),
    ], 16, 16, w=8),
    panel(8, "Pending references and parked keys", [
        (f'sum by (connector) (dastra_connect_pending_references{{{SEL}}})', "{{connector}} pending references"),
        (f'sum by (connector) (dastra_connect_parked_keys{{{SEL}}})', "{{connector}} parked keys"),
    ], 0, 24),
    panel(9, "Dastra request latency p95", [
        (f'histogram_quantile(0.95, sum by (le, route) (rate(dastra_connect_dastra_request_seconds_bucket{{{SEL}}}[$__rate_interval])))', "{{route}}"),
    ], 12, 24, unit="s"),
]

DASHBOARD = {
    "uid": "dastra-connect",
    "title": "dastra-connect",
    "tags": ["dastra-connect"],
    "schemaVersion": 39,
    "version": 1,
    "editable": False,
    "time": {"from": "now-1h", "to": "now"},
    "refresh": "30s",
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
         "current": {"text": "Prometheus", "value": "prometheus"}},
        {"name": "connector", "type": "query", "datasource": DS, "label": "Connector",
         "query": {"query": "label_values(dastra_connect_events_consumed_total, connector)", "refId": "connector"},
         "definition": "label_values(dastra_connect_events_consumed_total, connector)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
         "current": {"text": "All", "value": "$__all"}},
        {"name": "quota_limit", "type": "constant", "label": "Quota (requests/min)", "query": "500", "hide": 2},
    ]},
    "panels": PANELS,
}


def main():
    text = json.dumps(DASHBOARD, indent=2) + "\n"
    for out in OUTS:
        if "--check" in sys.argv:
            if not out.exists() or out.read_text() != text:
                sys.exit(f"{out} is stale: run python3 scripts/gen-grafana-dashboard.py")
        else:
            out.write_text(text)


if __name__ == "__main__":
    main()
