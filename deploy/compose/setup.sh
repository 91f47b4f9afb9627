#!/bin/sh
# One-shot setup of the compose stack, run in the cdcflow image by the
# `setup` service: wait for Connect and the registry, then create the example
# domain's tables and seed rows (both idempotent), register the contracts
# and apply the connector. Safe to run again.
set -eu

wait_for() {
  python - "$1" "$2" <<'PY'
import sys, time, urllib.error, urllib.request
url, what = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 300
while True:
    try:
        urllib.request.urlopen(url, timeout=5).close()
        break
    except (OSError, urllib.error.URLError) as exc:
        if time.monotonic() > deadline:
            sys.exit(f"{what} did not answer at {url} within 300 s: {exc}")
        time.sleep(2)
print(f"{what} is up", file=sys.stderr)
PY
}

wait_for "${CDCFLOW_CONNECT__URL}/connectors" "Kafka Connect"
wait_for "${CDCFLOW_REGISTRY__URL}/subjects" "schema registry"
cdcflow demo setup
cdcflow schemas register
cdcflow connectors apply --env compose --wait
