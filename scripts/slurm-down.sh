#!/usr/bin/env bash
# Stop the cluster started by scripts/slurm-up.sh, by the PIDs it recorded (never pkill):
# the slurmds, slurmctld, slurmdbd, MariaDB, munged. State and the accounting database stay in
# $SLURM_BASE, so the next slurm-up.sh starts warm.
set -u
BASE=${SLURM_BASE:-/tmp/aifkit-slurm}
CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
[ "$CONF_DIR" = /etc/slurm ] || export SLURM_CONF="$CONF_DIR/slurm.conf"
scancel --full --user="$(id -un)" 2>/dev/null || true
for pidfile in "$BASE"/run/slurmd-*.pid "$BASE/run/slurmd.pid" "$BASE/run/slurmctld.pid" \
  "$BASE/run/slurmdbd.pid" "$BASE/db/mariadbd.pid" /run/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
echo "slurm-down: stopped"
