#!/usr/bin/env bash
# Start a real PostgreSQL server (Debian's packages) for aifkit's tests: nbgrader's gradebook and,
# later, JupyterHub's database. Its own cluster under PG_BASE, run as the postgres Unix user by
# pg_ctl (no systemd, no pg_ctlcluster, the packaged "main" cluster is left alone), listening on
# 127.0.0.1 only, TCP logins by password (scram-sha-256). Run as root. Idempotent: a running
# server is left running; the role and databases are (re)checked every time.
# Stop it with scripts/postgres-down.sh.
#   PG_BASE      data dir, socket dir, log                 (default /tmp/aifkit-postgres)
#   PG_PORT      TCP port on 127.0.0.1                     (default 55432)
#   PG_PASSWORD  password of the role aifkit               (default aifkit-test)
set -euo pipefail
BASE=${PG_BASE:-/tmp/aifkit-postgres}
PORT=${PG_PORT:-55432}
PASSWORD=${PG_PASSWORD:-aifkit-test}
DATA=$BASE/data
RUN=$BASE/run
LOG=$BASE/log/postgres.log
DATABASES=(aifkit_gradebook aifkit_hub)

if [ "$(id -u)" != 0 ]; then echo "postgres-up: run as root (it runs the server as user postgres)" >&2; exit 2; fi

# The server binaries of one major version: the one that made an existing cluster, else the newest.
pg_bindir() {
  if [ -s "$DATA/PG_VERSION" ] && [ -x "/usr/lib/postgresql/$(cat "$DATA/PG_VERSION")/bin/initdb" ]; then
    echo "/usr/lib/postgresql/$(cat "$DATA/PG_VERSION")/bin"
    return
  fi
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; fi
}

BIN=$(pg_bindir)
if [ -z "$BIN" ] || ! command -v pg_ctlcluster >/dev/null; then
  echo "postgres-up: installing Debian's postgresql" >&2
  # Without systemd the package's postinst would start its "main" cluster on port 5432 through
  # invoke-rc.d; a policy-rc.d that answers 101 ("action forbidden") keeps it stopped.
  POLICY=/usr/sbin/policy-rc.d
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod 0755 "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
  BIN=$(pg_bindir)
  [ -n "$BIN" ] || { echo "postgres-up: no initdb under /usr/lib/postgresql/*/bin after install" >&2; exit 1; }
fi

# The postgres user must be able to enter every folder; run its commands from inside BASE so
# that it never complains about root's working directory.
install -d -o postgres -g postgres -m 0755 "$BASE" "$BASE/log"
install -d -o postgres -g postgres -m 0700 "$RUN"
cd "$BASE"
as_postgres() { runuser -u postgres -- "$@"; }

if [ ! -s "$DATA/PG_VERSION" ]; then
  # A fresh cluster. The superuser "postgres" gets a random password that is thrown away: it
  # logs in through the Unix socket only (peer), the tests use the role aifkit over TCP.
  rm -rf "$DATA"
  install -d -o postgres -g postgres -m 0700 "$DATA"
  pwfile=$(mktemp "$BASE/pw.XXXXXX")
  head -c 32 /dev/urandom | base64 | tr -d '\n' > "$pwfile"
  chown postgres:postgres "$pwfile"
  as_postgres "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$BASE/log/initdb.log" \
    || { rm -f "$pwfile"; echo "postgres-up: initdb failed:" >&2; tail -n 20 "$BASE/log/initdb.log" >&2; exit 1; }
  rm -f "$pwfile"
  echo "include_if_exists = 'aifkit.conf'" >> "$DATA/postgresql.conf"
fi

# Where it listens is rewritten on every run (read at start), so PG_PORT/PG_BASE changes apply.
# 127.0.0.1 only: never the host's other addresses, not even ::1.
cat > "$DATA/aifkit.conf" <<CONF
# written by scripts/postgres-up.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN'
password_encryption = 'scram-sha-256'
CONF
chown postgres:postgres "$DATA/aifkit.conf"

running() { as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }
if running; then
  # Left alone; but a server started with another PG_PORT would not pick up the new one.
  if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 5; then
    echo "postgres-up: the cluster in $DATA runs but does not answer on 127.0.0.1:$PORT" \
      "(started with another PG_PORT?); stop it with scripts/postgres-down.sh first" >&2
    exit 1
  fi
  echo "postgres-up: already running" >&2
elif "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2; then
  # Someone else's server holds the port: say so, rather than wait for ours to fail to bind.
  echo "postgres-up: another server already answers on 127.0.0.1:$PORT; set PG_PORT" >&2
  exit 1
else
  # -W: do not let pg_ctl wait; the readiness loop below has its own timeout and error report.
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -W start >/dev/null
  ready="" tries=0
  started=$SECONDS deadline=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.2
    tries=$((tries + 1))
    if running; then
      if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2; then ready=1; break; fi
    elif [ "$tries" -gt 5 ]; then
      # Its pid file appears at once: a postmaster gone after a second has exited (bad config,
      # port taken) and will not come back, so stop waiting.
      break
    fi
  done
  if [ -z "$ready" ]; then
    echo "postgres-up: the server did not start accepting connections on 127.0.0.1:$PORT (gave up after $((SECONDS - started)) s of 30); last log lines:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
fi

# Role and databases, created when absent. The password is always (re)set, so PG_PASSWORD
# changes apply; it travels as a psql variable and is quoted by psql (:'pw'), never by hand.
# CREATEDB: the test fixtures make one throw-away database per test.
as_postgres "$BIN/psql" -h "$RUN" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 \
  -v pw="$PASSWORD" >/dev/null <<'SQL'
SELECT 'CREATE ROLE aifkit' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aifkit')
\gexec
ALTER ROLE aifkit WITH LOGIN CREATEDB PASSWORD :'pw';
SQL
for db in "${DATABASES[@]}"; do
  # CREATE DATABASE cannot run inside a transaction or a DO block, hence \gexec.
  as_postgres "$BIN/psql" -h "$RUN" -p "$PORT" -d postgres -X -q -v ON_ERROR_STOP=1 \
    -v db="$db" >/dev/null <<'SQL'
SELECT format('CREATE DATABASE %I OWNER aifkit', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
done

# Percent-encode the password for the URL (letters, digits and -._~ stay as they are).
urlencode() {
  local LC_ALL=C s=$1 out="" c i  # C locale: walk bytes, so UTF-8 is encoded byte by byte
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in [a-zA-Z0-9.~_-]) out+=$c ;; *) out+=$(printf '%%%02X' "'$c") ;; esac
  done
  echo "$out"
}
echo "postgres-up: PostgreSQL $(cat "$DATA/PG_VERSION") ready on 127.0.0.1:$PORT (log $LOG)" >&2
echo "postgresql://aifkit:$(urlencode "$PASSWORD")@127.0.0.1:$PORT/aifkit_gradebook"
