#!/usr/bin/env bash
# Run SmartPost locally with embedded defaults: installs what is missing, starts the real stack (tansu Kafka
# broker on SeaweedFS storage, SeaweedFS S3, aiosmtpd) and every service, loads a demo account, and carries a
# generated serial letter from PDF to portal, e-mail and paper, printing what happened.
# Services keep running afterwards (gateway: http://127.0.0.1:8100); Ctrl-C stops everything.
# Data stays in var/ so a restart keeps letters; `rm -rf var` starts afresh.
#   SMARTPOST_EXIT_AFTER_DEMO=1 bash scripts/run.sh   # run the demo and stop
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PY=.venv/bin/python
$PY -m smartpost_shared.localrun down >/dev/null 2>&1 || true
trap '$PY -m smartpost_shared.localrun down' EXIT
$PY -m smartpost_shared.localrun up
$PY -m smartpost_shared.demo
if [ "${SMARTPOST_EXIT_AFTER_DEMO:-0}" = "1" ]; then exit 0; fi
echo
echo "SmartPost is running. Staff gateway: http://127.0.0.1:8100 (login: anna@hv-muster.de / demo-passwort-1)"
echo "Logs: var/stack/logs/. Press Ctrl-C to stop."
while true; do sleep 3600; done
