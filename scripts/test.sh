#!/usr/bin/env bash
# Run the whole test suite (unit, real-server integration, end-to-end, browser). The tests start their own
# real servers (tansu, SeaweedFS, aiosmtpd) on free ports; PostgreSQL is the machine's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
