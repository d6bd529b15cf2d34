#!/usr/bin/env bash
# Set up everything SmartPost needs on a fresh Debian machine: Python venv with all packages (pinned by
# constraints.txt), Debian's chromium for browser tests, and a PostgreSQL login for the event-store tests.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true

packages=(-e shared)
for svc in services/*/; do
  [ -f "$svc/pyproject.toml" ] && packages+=(-e "$svc")
done
stamp=.venv/.smartpost-installed
want=$(cat constraints.txt pyproject.toml shared/pyproject.toml services/*/pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages"
  # (the grep only hides this machine's pip notices about missing local index folders; pip's status decides)
  .venv/bin/pip install -q -c constraints.txt "${packages[@]}" -e ".[dev]" 2> >(grep -v "^WARNING: Location" >&2)
  .venv/bin/python -c "import smartpost_shared, faststream, eventsourcing, pikepdf, pypdfium2, minio" 
  echo "$want" > "$stamp"
fi

# Debian's chromium for the playwright browser tests (never 'playwright install': it downloads a browser).
if ! command -v chromium >/dev/null 2>&1; then
  echo "bootstrap: installing chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# PostgreSQL runs on the machine; make sure it is up and has the login the tests use (app/app).
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if pg_isready -q -h 127.0.0.1 -p 5432 && ! PGPASSWORD=app psql -h 127.0.0.1 -U app -d postgres -tAc "select 1" >/dev/null 2>&1; then
  echo "bootstrap: creating PostgreSQL login app/app"
  if [ "$(id -u)" = 0 ]; then
    su postgres -c "psql -q -c \"CREATE USER app WITH PASSWORD 'app' CREATEDB SUPERUSER\"" || true
  else
    sudo -u postgres psql -q -c "CREATE USER app WITH PASSWORD 'app' CREATEDB SUPERUSER" || true
  fi
fi
echo "bootstrap: ready"
