#!/usr/bin/env bash
# A throwaway PostgreSQL for the store tests (internal/store).
#
#   hack/postgres.sh start   start a fresh server (installing the Debian package
#                            `postgresql` when no binaries are found), create the
#                            database kustode_test, print its URL on stdout
#   hack/postgres.sh url     print the URL of the running server
#   hack/postgres.sh stop    stop the server (by its PID file) and delete its data
#
# Typical use (CI, or a laptop):
#
#   export KUSTODE_TEST_POSTGRES=$(hack/postgres.sh start)
#   trap 'hack/postgres.sh stop' EXIT
#   go test -race ./internal/store/
#
# The server listens on 127.0.0.1 only (port KUSTODE_PG_PORT, default 55432;
# its unix socket is in its data directory). The role `kustode` may connect
# over loopback without a password and owns kustode_test; every other role
# must give a password (the store tests check that a wrong one is refused
# without leaking it). Durability is switched off (fsync, synchronous_commit):
# the data is thrown away on stop. Data lives in KUSTODE_PG_DIR (default
# ${TMPDIR:-/tmp}/kustode-pg-$UID). initdb refuses to run as root, so as root
# the server runs as the `postgres` system user (created by the package).
# Progress goes to stderr; only the URL goes to stdout.
set -euo pipefail

port=${KUSTODE_PG_PORT:-55432}
base=${KUSTODE_PG_DIR:-${TMPDIR:-/tmp}/kustode-pg-$(id -u)}
data=$base/data
url="postgres://kustode@127.0.0.1:${port}/kustode_test?sslmode=disable"

log() { echo "postgres.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

# as_pg runs a command as the user that owns the server.
as_pg() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pid() { [[ -f $data/postmaster.pid ]] && head -1 "$data/postmaster.pid"; }

# alive: the process exists, is not a zombie, and is a postgres (a stale PID
# file may name a PID that now belongs to something else).
alive() {
  [[ -r /proc/$1/stat ]] && [[ $(cat "/proc/$1/comm" 2>/dev/null) == postgres* ]] &&
    [[ $(cut -d' ' -f3 "/proc/$1/stat") != Z ]]
}

running() {
  local p
  p=$(pid) || return 1
  alive "$p"
}

ensure_binaries() {
  if [[ -n $(bindir) ]]; then
    return
  fi
  [[ $(id -u) == 0 ]] || die "no PostgreSQL in /usr/lib/postgresql/*/bin; install it: sudo apt-get install -y postgresql"
  log "installing the Debian package postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  [[ -n $(bindir) ]] || die "apt-get installed postgresql but /usr/lib/postgresql/*/bin is missing"
}

start() {
  if running; then
    log "already running (pid $(pid)) in $data"
    echo "$url"
    return
  fi
  ensure_binaries
  local bin
  bin=$(bindir)
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres system user (from the postgresql package)"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port on 127.0.0.1 is taken; set KUSTODE_PG_PORT to a free port"
  fi

  rm -rf "$base"
  mkdir -p "$base"
  chmod 0700 "$base"
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$base"
  fi

  log "initdb $data ($bin)"
  as_pg "$bin/initdb" --pgdata="$data" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C --no-sync >"$base/initdb.log" 2>&1 ||
    die "initdb failed; see $base/initdb.log"

  as_pg tee -a "$data/postgresql.conf" >/dev/null <<EOF

# hack/postgres.sh: loopback only, disposable data.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  as_pg tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# hack/postgres.sh: the superuser over the unix socket (in the data directory,
# mode 0700); the test role without a password; every other role with one.
local all postgres trust
host  all kustode  127.0.0.1/32 trust
host  all all      127.0.0.1/32 scram-sha-256
EOF

  log "starting on 127.0.0.1:$port"
  as_pg "$bin/pg_ctl" --pgdata="$data" --log="$base/postgres.log" --wait --timeout=60 start >/dev/null ||
    die "pg_ctl start failed; see $base/postgres.log"

  as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$data" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE kustode LOGIN CREATEDB" \
    -c "CREATE DATABASE kustode_test OWNER kustode" >&2 ||
    die "creating the kustode role and database failed"
  log "ready (pid $(pid)); stop with: hack/postgres.sh stop"
  echo "$url"
}

stop() {
  if ! running; then
    log "not running"
    rm -rf "$base"
    return
  fi
  local p bin
  p=$(pid)
  bin=$(bindir)
  log "stopping pid $p"
  if [[ -z $bin ]] || ! as_pg "$bin/pg_ctl" --pgdata="$data" --mode=fast --wait --timeout=60 stop >/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
  fi
  # pg_ctl returns when the PID file is gone; the process exits just after.
  for _ in $(seq 120); do
    alive "$p" || break
    sleep 0.5
  done
  if alive "$p"; then
    die "pid $p is still running"
  fi
  rm -rf "$base"
}

case ${1:-} in
start) start ;;
stop) stop ;;
url)
  running || die "not running; start it with: hack/postgres.sh start"
  echo "$url"
  ;;
*) die "usage: hack/postgres.sh start|url|stop" ;;
esac
