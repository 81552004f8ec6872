#!/usr/bin/env bash
# Stop the PostgreSQL server started by scripts/postgres-up.sh (pg_ctl stop -m fast: open
# sessions are cut, transactions rolled back, no crash recovery needed at the next start).
# The data dir stays, so the next postgres-up.sh starts quickly. Run as root.
#   PG_BASE  as for postgres-up.sh (default /tmp/aifkit-postgres)
set -euo pipefail
BASE=${PG_BASE:-/tmp/aifkit-postgres}
DATA=$BASE/data

if [ "$(id -u)" != 0 ]; then echo "postgres-down: run as root (pg_ctl runs as user postgres)" >&2; exit 2; fi
if [ ! -s "$DATA/PG_VERSION" ]; then echo "postgres-down: no cluster in $DATA, nothing to stop"; exit 0; fi
BIN=/usr/lib/postgresql/$(cat "$DATA/PG_VERSION")/bin
cd "$BASE"  # the postgres user may not enter root's working directory

if ! runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  echo "postgres-down: not running"
  exit 0
fi
# -w -t 60: wait until the postmaster has exited; if fast shutdown hangs, fall back to
# immediate (no checkpoint: the next start replays the WAL) so that nothing is left running.
if ! runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" stop -m fast -w -t 60 >/dev/null; then
  echo "postgres-down: fast shutdown timed out, stopping immediately" >&2
  runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" stop -m immediate -w -t 30 >/dev/null
fi
echo "postgres-down: stopped"
