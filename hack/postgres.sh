#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on loopback, from Debian's server package.
#
#   hack/postgres.sh start    install the server if missing, init and start the cluster,
#                             print its URL (postgresql://sagaz:sagaz@127.0.0.1:PORT/sagaz)
#   hack/postgres.sh stop     stop it (data kept)
#   hack/postgres.sh destroy  stop it and delete its data
#   hack/postgres.sh url      print its URL
#
# SAGAZ_PG_NAME (default "postgres") names the instance, so the test session can run its
# own cluster beside the one `make up` keeps for the demo. PostgreSQL refuses to run as
# root; as root the server runs as the `postgres` user the package creates.
source "$(dirname "$0")/lib.sh"

NAME=${SAGAZ_PG_NAME:-postgres}
DIR=$SAGAZ_STATE/$NAME
PORT_FILE=$SAGAZ_STATE/$NAME.port

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir ]] && echo "$dir"
}

install_server() {
  pg_bin >/dev/null && return 0
  [[ $(id -u) == 0 ]] || die "PostgreSQL server is not installed; run: sudo apt-get install -y postgresql"
  log "installing PostgreSQL from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# as_owner COMMAND...: run COMMAND as the user that owns the cluster.
as_owner() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgresql://sagaz:sagaz@$SAGAZ_HOST:$(cat "$PORT_FILE")/sagaz"; }

running() { [[ -f $DIR/data/postmaster.pid ]] && as_owner "$(pg_bin)/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; }

start() {
  install_server
  local bin; bin=$(pg_bin)
  if running; then url; return; fi
  [[ -f $PORT_FILE ]] || free_port >"$PORT_FILE"
  mkdir -p "$DIR"
  [[ $(id -u) == 0 ]] && chown postgres: "$DIR"
  if [[ ! -f $DIR/data/PG_VERSION ]]; then
    printf 'sagaz\n' >"$DIR/pwfile"; [[ $(id -u) == 0 ]] && chown postgres: "$DIR/pwfile"
    as_owner "$bin/initdb" -D "$DIR/data" -U sagaz --pwfile "$DIR/pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale C.UTF-8 >"$DIR/initdb.log"
  fi
  mkdir -p "$DIR/run"; [[ $(id -u) == 0 ]] && chown postgres: "$DIR/run"
  # fsync off: a throw-away cluster trades durability across power loss for speed.
  as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=$SAGAZ_HOST -p $(cat "$PORT_FILE") -c unix_socket_directories=$DIR/run -c fsync=off -c max_connections=300" \
    start >/dev/null
  if ! as_owner "$bin/psql" -h "$DIR/run" -p "$(cat "$PORT_FILE")" -U sagaz -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'sagaz'" | grep -q 1; then
    as_owner "$bin/createdb" -h "$DIR/run" -p "$(cat "$PORT_FILE")" -U sagaz sagaz
  fi
  url
}

stop() {
  local bin; bin=$(pg_bin) || return 0
  if running; then as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null; fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  destroy) stop; rm -rf "$DIR" "$PORT_FILE" ;;
  url) url ;;
  *) die "usage: $0 start|stop|destroy|url" ;;
esac
