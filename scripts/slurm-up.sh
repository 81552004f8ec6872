#!/usr/bin/env bash
# Start a real two-node SLURM cluster with accounting on localhost for aifkit's tests and notebooks:
# Debian 12's slurm-wlm + munge + slurmdbd on MariaDB, no systemd or cgroups. Two compute nodes
# (aifkit-n1, aifkit-n2: one slurmd each, own port, spool, pid and log file; 2 CPUs and two fake
# GPUs as GRES each), partition "debug", account "aifkit-course" with a GPU-minutes budget per
# user and a QOS "budget" with a GPU-minutes limit (see src/aifkit/data/sites/local.yml).
# Run as root. Idempotent: daemons already running are left alone (a changed slurm.conf restarts
# slurmctld and the slurmds). Stop it with scripts/slurm-down.sh.
#   SLURM_BASE        state, spool, logs, pids, fake GPU devices, MariaDB data (default /tmp/aifkit-slurm)
#   SLURM_CONF_DIR    where slurm.conf goes; /etc/slurm lets every client find it without SLURM_CONF
#   SLURM_PORT_BASE   slurmctld's port; slurmds, slurmdbd and MariaDB take the next five (default 6817)
#   SLURM_USERS       users given an association in aifkit-course (default: root, the hub test
#                     users of scripts/hub-test-users.sh, and $SUDO_USER if set)
#   SLURM_GPU_BUDGET  each user's budget in GPU-minutes (GrpTRESMins=gres/gpu, default 6000)
#
# CPUs: each node declares CPUs=2 although both share this machine's cores (overcommitted on a
# 2-core machine): two 2-rank jobs, or one 2-node job of 2 ranks per node, can run at once.
# No cgroups: CPU and memory limits are not enforced, so the overcommit costs only speed.
set -euo pipefail
BASE=${SLURM_BASE:-/tmp/aifkit-slurm}
CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
PORT=${SLURM_PORT_BASE:-6817}
CTLD_PORT=$PORT N1_PORT=$((PORT + 1)) DBD_PORT=$((PORT + 2)) N2_PORT=$((PORT + 3)) DB_PORT=$((PORT + 5))
NODES=(aifkit-n1 aifkit-n2)
NODE_PORTS=("$N1_PORT" "$N2_PORT")
CLUSTER=aifkit
ACCOUNT=aifkit-course
USERS=${SLURM_USERS:-"root ${HUB_TEST_USERS:-aifkit-learner1 aifkit-learner2} ${SUDO_USER:-}"}
BUDGET=${SLURM_GPU_BUDGET:-6000}
[ "$CONF_DIR" = /etc/slurm ] || export SLURM_CONF="$CONF_DIR/slurm.conf"
T0=$(date +%s%N)
log() { echo "slurm-up: $*"; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$(id -u)" != 0 ]; then echo "slurm-up: run as root (it starts munged, mariadbd, slurmdbd, slurmctld, slurmd)" >&2; exit 2; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v slurmdbd >/dev/null \
  || ! command -v mariadbd >/dev/null; then
  log "installing Debian's slurm-wlm, slurmdbd, MariaDB and munge" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
    slurmctld slurmd slurm-client slurmdbd munge mariadb-server mariadb-client >/dev/null
fi
mkdir -p "$BASE"/{state,spool,log,run,dev,db} "$CONF_DIR"

# Every node name must resolve (torchrun's rendezvous host, batchspawner's server address).
for node in "${NODES[@]}"; do
  getent hosts "$node" >/dev/null || echo "127.0.0.1 $node  # aifkit test cluster (scripts/slurm-up.sh)" >>/etc/hosts
done

# -- munge: authentication between the SLURM daemons and clients --------------------------------
[ -s /etc/munge/munge.key ] || mungekey --create --force
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
munge -n | unmunge >/dev/null

# -- MariaDB for slurmdbd: own datadir and socket under $BASE/db, TCP on 127.0.0.1 only -----------
DB=$BASE/db
SOCK=$DB/mysqld.sock
if ! alive "$DB/mariadbd.pid"; then
  install -d -o mysql -g mysql -m 0700 "$DB/data"
  chown mysql:mysql "$DB" && chmod 0711 "$DB"
  if [ ! -d "$DB/data/mysql" ]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$BASE/log/mariadb-install.log" 2>&1
  fi
  setsid mariadbd --no-defaults --user=mysql --datadir="$DB/data" --socket="$SOCK" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$DB/mariadbd.pid" \
    --log-error="$BASE/log/mariadb.log" --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
    --innodb-flush-log-at-trx-commit=2 --skip-log-bin </dev/null >/dev/null 2>&1 &
  for _ in $(seq 150); do mariadb --no-defaults --socket="$SOCK" -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
fi
[ -s "$DB/password" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DB/password")
DB_PASS=$(cat "$DB/password")
mariadb --no-defaults --socket="$SOCK" -uroot <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

# -- slurmdbd ---------------------------------------------------------------------------------
(umask 077 && cat >"$CONF_DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$BASE/run/slurmdbd.pid
LogFile=$BASE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
)

# -- fake GPUs: character devices (clones of /dev/null) so SLURM sets CUDA_VISIBLE_DEVICES ------
for i in 0 1 2 3; do [ -c "$BASE/dev/nvidia$i" ] || mknod -m 666 "$BASE/dev/nvidia$i" c 1 3; done
MEM=$(( ($(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 512) / ${#NODES[@]} ))
NEW_CONF=$(mktemp)
cat >"$NEW_CONF" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu
AccountingStorageEnforce=associations,limits,qos
PriorityType=priority/multifactor
PriorityDecayHalfLife=0
PriorityUsageResetPeriod=NONE
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
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
GresTypes=gpu
NodeName=${NODES[0]} NodeHostname=$(hostname -s) NodeAddr=127.0.0.1 Port=$N1_PORT CPUs=2 RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
NodeName=${NODES[1]} NodeHostname=$(hostname -s) NodeAddr=127.0.0.1 Port=$N2_PORT CPUs=2 RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=1-00:00:00 State=UP
CONF
cat >"$CONF_DIR/gres.conf" <<CONF
AutoDetect=off
NodeName=${NODES[0]} Name=gpu File=$BASE/dev/nvidia[0-1]
NodeName=${NODES[1]} Name=gpu File=$BASE/dev/nvidia[2-3]
CONF
if ! cmp -s "$NEW_CONF" "$CONF_DIR/slurm.conf" && alive "$BASE/run/slurmctld.pid"; then
  log "slurm.conf changed: restarting slurmctld and the slurmds"
  for pidfile in "$BASE"/run/slurmd*.pid "$BASE/run/slurmctld.pid"; do
    [ "$pidfile" = "$BASE/run/slurmdbd.pid" ] && continue
    alive "$pidfile" || continue
    pid=$(cat "$pidfile"); kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
fi
mv "$NEW_CONF" "$CONF_DIR/slurm.conf" && chmod 0644 "$CONF_DIR/slurm.conf"

alive "$BASE/run/slurmdbd.pid" || slurmdbd
for _ in $(seq 150); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.2; done

# -- accounts, users, QOS (sacctmgr -i: no questions; each added only when missing) --------------
has() { [ -n "$(sacctmgr -n -P show "$@" 2>/dev/null)" ]; }
has cluster "$CLUSTER" format=cluster || sacctmgr -i add cluster "$CLUSTER" >/dev/null
# slurmctld registers the TRES of AccountingStorageTRES (gres/gpu) before limits can name it
alive "$BASE/run/slurmctld.pid" || slurmctld -i
for _ in $(seq 150); do sacctmgr -n -P show tres format=type,name 2>/dev/null | grep -qx 'gres|gpu' && break; sleep 0.2; done
has qos budget format=name || sacctmgr -i add qos budget \
  GrpTRESMins=gres/gpu=60 MaxTRESMinsPerJob=gres/gpu=60 \
  Description="course demo: at most one GPU-hour per job, one for all jobs" >/dev/null
has account "$ACCOUNT" format=account || sacctmgr -i add account "$ACCOUNT" \
  Cluster="$CLUSTER" Description="aifkit course learners" Organization=aifkit >/dev/null
for user in $USERS; do
  has assoc user="$user" account="$ACCOUNT" format=user || sacctmgr -i add user "$user" \
    Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
  sacctmgr -i modify user where name="$user" account="$ACCOUNT" set \
    QOS=normal,budget DefaultQOS=normal GrpTRESMins=gres/gpu="$BUDGET" >/dev/null || true
  [ "$user" = root ] && sacctmgr -i modify user where name=root set DefaultAccount="$ACCOUNT" >/dev/null || true
done

# -- the two node daemons --------------------------------------------------------------------
for node in "${NODES[@]}"; do
  alive "$BASE/run/slurmd-$node.pid" || slurmd -N "$node"
done
for _ in $(seq 150); do
  [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -cE ' (idle|mix|alloc|comp)$')" = "${#NODES[@]}" ] && {
    log "nodes ${NODES[*]} up, accounting on (logs in $BASE/log, $(( ($(date +%s%N) - T0) / 1000000 )) ms)"
    exit 0
  }
  sleep 0.2
done
echo "slurm-up: the nodes did not become idle within 30 s; last log lines:" >&2
tail -n 20 "$BASE"/log/*.log >&2
exit 1
