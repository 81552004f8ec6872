#!/usr/bin/env bash
# Stop the OpenID Connect provider started by scripts/oidc-up.sh (glewlwyd, by its pid file).
# Its database and secrets stay in OIDC_BASE, so the next oidc-up.sh starts quickly; remove that
# folder to start from scratch. Run as root.
#   OIDC_BASE  as for oidc-up.sh (default /tmp/aifkit-oidc)
set -euo pipefail
BASE=${OIDC_BASE:-/tmp/aifkit-oidc}
PIDFILE=$BASE/glewlwyd.pid

if [ "$(id -u)" != 0 ]; then echo "oidc-down: run as root" >&2; exit 2; fi
if [ ! -s "$PIDFILE" ] || ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  rm -f "$PIDFILE"
  echo "oidc-down: not running"
  exit 0
fi
pid=$(cat "$PIDFILE")
# Only our own daemon: the pid must still be glewlwyd started with our config file.
if ! tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "--config-file=$BASE/glewlwyd.conf"; then
  echo "oidc-down: pid $pid is not the glewlwyd of $BASE; left alone" >&2
  rm -f "$PIDFILE"
  exit 1
fi
kill -TERM "$pid"
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
  echo "oidc-down: glewlwyd did not stop in 10 s, killing it" >&2
  kill -KILL "$pid"
fi
rm -f "$PIDFILE"
echo "oidc-down: stopped"
