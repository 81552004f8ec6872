#!/usr/bin/env bash
# Start a real single-node SLURM cluster on localhost for aifkit's tests and notebooks:
# Debian 12's slurm-wlm + munge, no systemd or cgroups, two fake GPUs as GRES, partition
# "debug" (see src/aifkit/data/sites/local.yml). Run as root. Idempotent: a running cluster
# is left alone. Stop it with scripts/slurm-down.sh.
#   SLURM_BASE      state, spool, logs, pid files, fake GPU devices   (default /tmp/aifkit-slurm)
#   SLURM_CONF_DIR  where slurm.conf goes; /etc/slurm lets every client find it without SLURM_CONF
set -euo pipefail
BASE=${SLURM_BASE:-/tmp/aifkit-slurm}
CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
HOST=$(hostname -s)

if [ "$(id -u)" != 0 ]; then echo "slurm-up: run as root (it starts munged, slurmctld, slurmd)" >&2; exit 2; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm-up: installing Debian's slurm-wlm and munge" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi
if sinfo -h -o %t 2>/dev/null | grep -qxE 'idle|mix|alloc|comp'; then echo "slurm-up: already running"; exit 0; fi

mkdir -p "$BASE"/{state,spool,log,run,dev} "$CONF_DIR"
# munge: authentication between the SLURM daemons and clients
[ -s /etc/munge/munge.key ] || mungekey --create --force
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

# Fake GPUs must be character devices (clones of /dev/null) for SLURM to set CUDA_VISIBLE_DEVICES.
for i in 0 1; do [ -c "$BASE/dev/nvidia$i" ] || mknod -m 666 "$BASE/dev/nvidia$i" c 1 3; done
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 512 ))
cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=aifkit
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
MailProg=/bin/true
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
GresTypes=gpu
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=${MEM} Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=1-00:00:00 State=UP
CONF
cat > "$CONF_DIR/gres.conf" <<CONF
AutoDetect=off
NodeName=${HOST} Name=gpu File=$BASE/dev/nvidia[0-1]
CONF

slurmctld -i
slurmd
for _ in $(seq 150); do
  [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && { echo "slurm-up: node $HOST idle (logs in $BASE/log)"; exit 0; }
  sleep 0.2
done
echo "slurm-up: node did not become idle within 30 s; last log lines:" >&2
tail -n 20 "$BASE"/log/*.log >&2
exit 1
