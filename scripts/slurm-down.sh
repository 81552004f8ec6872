#!/usr/bin/env bash
# Stop the cluster started by scripts/slurm-up.sh, by the PIDs it recorded (never pkill).
set -u
BASE=${SLURM_BASE:-/tmp/aifkit-slurm}
scancel --full --user="$(id -un)" 2>/dev/null || true
for pidfile in "$BASE/run/slurmd.pid" "$BASE/run/slurmctld.pid" /run/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
echo "slurm-down: stopped"
