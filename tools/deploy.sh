#!/usr/bin/env bash
# `make deploy`: deploy every flow in prefect.yaml to the Prefect server at PREFECT_API_URL or, when that is not
# set, to a local server that this script starts on 127.0.0.1 (log: .prefect/server.log). Creates the process
# work pool when it is missing, then says how to start a worker.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PREFECT_PORT:-4200}
POOL=$("$BIN/python" -c "from my_package.common.settings import load_settings as l; print(l().sections.get('deployments', {}).get('work_pool', 'pipeline-pool'))")

healthy() { "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1].rstrip('/') + '/health', timeout=3)" "$1" 2>/dev/null; }

"$BIN/python" -m my_package deployments --check
if [ -z "${PREFECT_API_URL:-}" ]; then
  export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
  if ! healthy "$PREFECT_API_URL"; then
    mkdir -p .prefect
    echo "PREFECT_API_URL is not set: starting a local Prefect server on 127.0.0.1:$PORT (log: .prefect/server.log)"
    nohup "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" > .prefect/server.log 2>&1 &
    for _ in $(seq 1 120); do healthy "$PREFECT_API_URL" && break; sleep 1; done
    healthy "$PREFECT_API_URL" || { echo "The Prefect server did not start: see .prefect/server.log"; exit 1; }
  fi
fi
"$BIN/prefect" work-pool inspect "$POOL" > /dev/null 2>&1 || "$BIN/prefect" work-pool create "$POOL" --type process
"$BIN/prefect" --no-prompt deploy --all
cat <<MSG

Deployed to $PREFECT_API_URL. Start one or more workers (here, or on any machine with the wheel installed):
  PREFECT_API_URL=$PREFECT_API_URL MY_PACKAGE_SETTINGS=$PWD/settings.ini $BIN/prefect worker start --pool $POOL
or: make worker
MSG
