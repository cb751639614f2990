#!/usr/bin/env bash
# One real Apache Kafka broker for the local stack: a single JVM in KRaft combined mode
# (broker + controller, node.id 1), listening on 127.0.0.1 only.
#
#   hack/kafka.sh install    resolve the broker's jars into $SAGAZ_CACHE/kafka-<version>/lib
#   hack/kafka.sh start      install if needed, start the broker, wait until it serves requests,
#                            print the bootstrap address (127.0.0.1:<port>) on stdout
#   hack/kafka.sh stop       stop the broker we started (by its pid)
#   hack/kafka.sh status     exit 0 and print the bootstrap address if the broker is running
#   hack/kafka.sh bootstrap  print the bootstrap address
#   hack/kafka.sh tool CLASS [ARG...]
#                            run a Kafka command-line class on the cached classpath, e.g.
#                              hack/kafka.sh tool org.apache.kafka.tools.TopicCommand \
#                                --bootstrap-server "$(hack/kafka.sh bootstrap)" --list
#
# Why this way: the local stack runs without containers and may download only from package
# registries, so neither a Kafka image nor the release tarball is available. Every jar of a
# Kafka release is on Maven Central, though: hack/kafka/pom.xml names the broker (kafka_2.13),
# the command-line tools and the Log4j 2 backend, Maven resolves that runtime classpath
# (checksums, transitive versions, its own download cache) and copies it into $SAGAZ_CACHE.
# The broker is then started the way the release's own wrapper scripts would start it:
# `java -cp 'lib/*' kafka.Kafka server.properties`.
#
# Files:
#   $SAGAZ_CACHE/kafka-$KAFKA_VERSION/lib/   the jars, plus .pom-sha256 (the pom they came from).
#                                            It only ever appears by renaming a finished staging
#                                            dir, so an interrupted install leaves no half cache.
#   $SAGAZ_STATE/kafka.port                  broker (client) port; kafka.controller.port: KRaft
#                                            controller port. Both are reused across restarts
#                                            while they are free, so the bootstrap address stays.
#   $SAGAZ_STATE/kafka/                      server.properties, log4j2 configs, data/ (the log
#                                            dirs and KRaft metadata, formatted once)
#   $SAGAZ_STATE/kafka.log, kafka.pid        broker output and pid (see start_daemon in lib.sh)
#
# `stop` keeps $SAGAZ_STATE/kafka/data, so topics and committed offsets survive a restart.
# To start from an empty cluster: stop, then remove $SAGAZ_STATE/kafka.
#
# The controller quorum is static (controller.quorum.voters) rather than a dynamic KRaft quorum:
# a dynamic quorum records the controller's endpoint in the formatted metadata, which would tie
# the data dir to one controller port; with a static quorum the port can change between runs.
# shellcheck source=hack/lib.sh
source "$(dirname "$0")/lib.sh"

KAFKA_HOME=$SAGAZ_CACHE/kafka-$KAFKA_VERSION
KAFKA_LIB=$KAFKA_HOME/lib
KAFKA_POM=$REPO_ROOT/hack/kafka/pom.xml
KAFKA_DIR=$(cd "$SAGAZ_STATE" && pwd)/kafka   # absolute: it ends up in the broker's config
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PORT_FILE=$SAGAZ_STATE/kafka.port
KAFKA_CONTROLLER_PORT_FILE=$SAGAZ_STATE/kafka.controller.port
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
# Heap as asked for a dev broker; the GC settings are the ones Kafka's own start scripts use.
KAFKA_JVM_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true)
# Short-lived command-line tools (storage formatter, readiness probe, `tool`): a small JVM tuned
# to start fast, logging warnings to stderr only.
KAFKA_TOOL=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" -cp "$KAFKA_LIB/*")

# ---------------------------------------------------------------------------------------------
# install

pom_sha256() { sha256sum "$KAFKA_POM" | cut -d' ' -f1; }

# The cache is complete when lib/ exists (it only appears whole) and came from the current pom.
kafka_installed() {
  [[ -f $KAFKA_LIB/.pom-sha256 && $(<"$KAFKA_LIB/.pom-sha256") == "$(pom_sha256)" ]]
}

cmd_install() {
  if kafka_installed; then return 0; fi
  command -v mvn >/dev/null || die "mvn is needed to fetch Kafka's jars from Maven Central"
  log "kafka: resolving Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIB"
  mkdir -p "$KAFKA_HOME"
  local stage started=$SECONDS
  stage=$(mktemp -d "$KAFKA_HOME/.staging.XXXXXX")
  # shellcheck disable=SC2064  # expand $stage now
  trap "rm -rf '$stage'" EXIT
  # Maven writes target/ next to the pom it runs, so run a copy inside the staging dir.
  cp "$KAFKA_POM" "$stage/pom.xml"
  # Quiet Maven still prints stray terminal escapes; show its output only when it fails.
  local output
  if ! output=$(mvn -B -q -f "$stage/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$stage/lib" 2>&1); then
    printf '%s\n' "$output" >&2
    die "kafka: Maven could not resolve Kafka $KAFKA_VERSION (see its output above)"
  fi
  [[ -f $stage/lib/kafka_2.13-$KAFKA_VERSION.jar ]] \
    || die "kafka: Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
  pom_sha256 >"$stage/lib/.pom-sha256"

  # An outdated lib/ (pom changed) is moved aside first; rename(2) then publishes the new one.
  # If another install won the race, its lib/ is just as good.
  if [[ -d $KAFKA_LIB ]] && ! kafka_installed; then mv -T "$KAFKA_LIB" "$stage/outdated"; fi
  mv -T "$stage/lib" "$KAFKA_LIB" 2>/dev/null || kafka_installed \
    || die "kafka: could not move the jars into $KAFKA_LIB"
  rm -rf "$stage"
  trap - EXIT
  log "kafka: $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars cached in $((SECONDS - started))s"
}

# ---------------------------------------------------------------------------------------------
# start

# port_is_free PORT: nothing is bound to 127.0.0.1:PORT. SO_REUSEADDR as the broker's own
# listener uses it, so connections of a previous run lingering in TIME_WAIT don't count.
port_is_free() {
  python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
EOF
}

# port_is_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_is_open() { (: <>"/dev/tcp/$SAGAZ_HOST/$1") 2>/dev/null; }

# choose_port FILE [AVOID]: the port stored in FILE if it is still free, else a fresh free one
# (never AVOID); stores the result in FILE and prints it.
choose_port() {
  local file=$1 avoid=${2:-} port=
  if [[ -f $file ]]; then
    port=$(<"$file")
    if ! [[ $port =~ ^[0-9]+$ ]] || [[ $port == "$avoid" ]] || ! port_is_free "$port"; then
      log "kafka: port ${port:-?} from $file is taken, picking another one"
      port=
    fi
  fi
  while [[ -z $port || $port == "$avoid" ]]; do port=$(free_port); done
  echo "$port" >"$file"
  echo "$port"
}

bootstrap_address() {
  [[ -f $KAFKA_PORT_FILE ]] || die "kafka: no broker port recorded yet; run: hack/kafka.sh start"
  echo "$SAGAZ_HOST:$(<"$KAFKA_PORT_FILE")"
}

# Command-line tools log warnings only, on stderr, so their stdout stays clean.
write_tools_config() {
  mkdir -p "$KAFKA_DIR"
  cat >"$KAFKA_DIR/tools-log4j2.properties" <<'EOF'
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger = WARN, err
EOF
}

write_config() {
  local port=$1 controller_port=$2
  mkdir -p "$KAFKA_DIR"
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by hack/kafka.sh on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$SAGAZ_HOST:$controller_port
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$SAGAZ_HOST:$port,CONTROLLER://$SAGAZ_HOST:$controller_port
advertised.listeners=PLAINTEXT://$SAGAZ_HOST:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA

# One node: every replication factor and in-sync minimum is 1.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Dev conveniences: topics appear on first use, groups form without the 3 s wait, and the
# internal topics get a few partitions instead of 50 (much faster first consumer group).
auto.create.topics.enable=true
num.partitions=4
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
EOF

  # Broker: everything to stdout, which start_daemon sends to $SAGAZ_STATE/kafka.log.
  # Log4j's own shutdown hook would race Kafka's and swallow the shutdown messages; the console
  # appender writes synchronously, so there is nothing for Log4j to flush at exit anyway.
  cat >"$KAFKA_DIR/log4j2.properties" <<'EOF'
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger = INFO, out
# Per-request and per-partition chatter.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
EOF

  write_tools_config

  # Client settings for the readiness probe: give up quickly, wait_for retries.
  cat >"$KAFKA_DIR/probe.properties" <<'EOF'
request.timeout.ms=3000
default.api.timeout.ms=5000
EOF
}

# The data dir is formatted once, with a fresh cluster id; later starts reuse it.
format_storage() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local cluster_id
  cluster_id=$("${KAFKA_TOOL[@]}" kafka.tools.StorageTool random-uuid)
  log "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
  "${KAFKA_TOOL[@]}" kafka.tools.StorageTool format --cluster-id "$cluster_id" \
    --config "$KAFKA_DIR/server.properties" >&2
}

listening_or_exited() { ! daemon_running kafka || port_is_open "$1"; }

# Ready means a real client round trip: listing topics needs the broker to have caught up with
# the KRaft metadata and to answer Metadata requests.
broker_ready() {
  timeout 20 "${KAFKA_TOOL[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" \
    --list --command-config "$KAFKA_DIR/probe.properties"
}

startup_failed() {
  log "kafka: last lines of $SAGAZ_STATE/kafka.log:"
  tail -n 40 "$SAGAZ_STATE/kafka.log" >&2 || true
  die "kafka: $1"
}

cmd_start() {
  cmd_install
  if daemon_running kafka; then
    log "kafka: already running (pid $(<"$SAGAZ_STATE/kafka.pid"))"
    bootstrap_address
    return 0
  fi

  local port controller_port address started=$SECONDS
  port=$(choose_port "$KAFKA_PORT_FILE")
  controller_port=$(choose_port "$KAFKA_CONTROLLER_PORT_FILE" "$port")
  address=$SAGAZ_HOST:$port
  write_config "$port" "$controller_port"
  format_storage

  log "kafka: starting Kafka $KAFKA_VERSION on $address (controller on port $controller_port)"
  start_daemon kafka "$JAVA" "${KAFKA_JVM_OPTS[@]}" \
    -XX:ErrorFile="$KAFKA_DIR/hs_err_pid%p.log" \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_DIR/server.properties"

  # wait_for exits the script on timeout; run it in a subshell to show the log first.
  (wait_for "kafka listener on $address" 60 listening_or_exited "$port") \
    || startup_failed "the broker did not open $address"
  daemon_running kafka || startup_failed "the broker exited during startup"
  (wait_for "kafka broker at $address" 60 broker_ready "$address") \
    || startup_failed "the broker at $address does not answer requests"
  log "kafka: ready at $address after $((SECONDS - started))s (pid $(<"$SAGAZ_STATE/kafka.pid"))"
  echo "$address"
}

# ---------------------------------------------------------------------------------------------
# stop, status, bootstrap, tool

cmd_stop() {
  if daemon_running kafka; then
    log "kafka: stopping pid $(<"$SAGAZ_STATE/kafka.pid")"
  fi
  stop_daemon kafka
}

cmd_status() {
  if daemon_running kafka; then
    bootstrap_address
  else
    log "kafka: not running"
    return 1
  fi
}

cmd_tool() {
  (($# > 0)) || die "usage: $0 tool CLASS [ARG...]"
  kafka_installed || die "kafka: not installed; run: $0 install"
  [[ -f $KAFKA_DIR/tools-log4j2.properties ]] || write_tools_config
  "${KAFKA_TOOL[@]}" "$@"
}

usage() { die "usage: $0 install|start|stop|status|bootstrap|tool CLASS [ARG...]"; }

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  bootstrap) bootstrap_address ;;
  tool) shift; cmd_tool "$@" ;;
  *) usage ;;
esac
