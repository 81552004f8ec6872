#!/usr/bin/env bash
# Real Unix accounts for the SLURM hub tests (tests/test_hub_slurm.py): batchspawner's
# SlurmSpawner looks learners up with pwd.getpwnam and submits their jobs as them through
# `sudo -E -u <learner>`, so the test learners must exist and sudo must be installed.
# Run as root. Idempotent: existing accounts are left alone; no passwords are set (locked).
#   scripts/hub-test-users.sh            create the accounts (and install sudo when missing)
#   scripts/hub-test-users.sh --remove   delete the accounts and their home folders
#   HUB_TEST_USERS  the account names  (default "aifkit-learner1 aifkit-learner2")
set -euo pipefail
USERS=${HUB_TEST_USERS:-"aifkit-learner1 aifkit-learner2"}

if [ "$(id -u)" != 0 ]; then echo "hub-test-users: run as root" >&2; exit 2; fi

if [ "${1:-}" = "--remove" ]; then
  for name in $USERS; do
    if getent passwd "$name" >/dev/null; then
      # userdel refuses while the account runs processes: cancel its SLURM jobs first
      if command -v scancel >/dev/null; then scancel --user="$name" 2>/dev/null || true; fi
      for _ in $(seq 50); do userdel --remove "$name" 2>/dev/null && break; sleep 0.2; done
      getent passwd "$name" >/dev/null && { echo "hub-test-users: cannot remove $name" >&2; exit 1; }
      # its SLURM association would keep the old uid: the next account of that name re-adds it
      if command -v sacctmgr >/dev/null; then timeout 20 sacctmgr -i delete user name="$name" >/dev/null 2>&1 || true; fi
      echo "hub-test-users: removed $name"
    fi
  done
  exit 0
fi
if [ $# -gt 0 ]; then echo "usage: $0 [--remove]" >&2; exit 2; fi

if ! command -v sudo >/dev/null; then
  echo "hub-test-users: installing sudo (batchspawner's exec prefix is sudo -E -u <user>)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends sudo >/dev/null
fi

for name in $USERS; do
  if getent passwd "$name" >/dev/null; then
    echo "hub-test-users: $name exists"
  else
    useradd --create-home --base-dir /home --shell /bin/bash "$name"   # no password: locked
    echo "hub-test-users: created $name ($(getent passwd "$name" | cut -d: -f6))"
  fi
done

# With accounting (scripts/slurm-up.sh) SLURM takes jobs only from users with an association:
# give each learner one in the course account, then let slurmctld resolve the new accounts' uids.
if command -v sacctmgr >/dev/null && timeout 20 sacctmgr -n show cluster >/dev/null 2>&1; then
  for name in $USERS; do
    [ -n "$(timeout 20 sacctmgr -n -P show assoc user="$name" account=aifkit-course format=user)" ] \
      || timeout 20 sacctmgr -i add user "$name" Account=aifkit-course DefaultAccount=aifkit-course >/dev/null
    timeout 20 sacctmgr -i modify user where name="$name" account=aifkit-course set QOS=normal,budget \
      DefaultQOS=normal GrpTRESMins=gres/gpu="${SLURM_GPU_BUDGET:-6000}" >/dev/null || true
  done
  timeout 20 scontrol reconfigure
  # slurmctld learns new associations from slurmdbd asynchronously: a learner's first sbatch
  # would be "Invalid account" until its association (with this account's uid) is in its cache
  for name in $USERS; do
    want="UserName=$name($(id -u "$name"))"
    for _ in $(seq 150); do
      timeout 20 scontrol show assoc_mgr users="$name" flags=assoc 2>/dev/null | grep -qF "$want" && break
      sleep 0.2
    done
    timeout 20 scontrol show assoc_mgr users="$name" flags=assoc 2>/dev/null | grep -qF "$want" \
      || { echo "hub-test-users: slurmctld has no association for $name after 30 s" >&2; exit 1; }
  done
fi
