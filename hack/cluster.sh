#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without Docker or a kubelet:
#   etcd -> kube-apiserver (RBAC, client certificates) -> kube-controller-manager,
#   kube-scheduler -> kwok, which plays the kubelet for one fake node (hack/kwok/).
# Deployments get Running pods and Jobs complete, so operators can be tested end to end.
# The chart's admission policy (charts/sagaz-operator/templates/admission-policy.yaml) is
# applied too, so sagas are checked against their authors' rights here as in a real install.
#
#   hack/cluster.sh up      start (or keep) the cluster; writes $SAGAZ_STATE/admin.kubeconfig
#   hack/cluster.sh down    stop what `up` started, by pid; keeps the data for a fast restart
#   hack/cluster.sh reset   down, then forget all data and certificates
#   hack/cluster.sh status  exit 0 when the API server answers
#   hack/cluster.sh restart-apiserver [--expire-watches]
#                           stop the API server (TERM, by pid) and start it again, as an upgrade
#                           or a crash would; the rest of the cluster keeps running. With
#                           --expire-watches, etcd is compacted meanwhile, so every watch resumed
#                           from before the restart is answered 410 Gone (too old)
source "$(dirname "$0")/lib.sh"
source "$REPO_ROOT/hack/certs.sh"

PKI=$SAGAZ_STATE/pki
BIN=$SAGAZ_STATE/bin
PORTS=$SAGAZ_STATE/cluster.ports
KUBECONFIG_ADMIN=$SAGAZ_STATE/admin.kubeconfig
COMPONENTS=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

load_ports() {
  if [[ -f $PORTS ]]; then source "$PORTS"; return; fi
  ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); APISERVER_PORT=$(free_port)
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' \
    "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" >"$PORTS"
}

api_ready() {
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" get --raw /readyz >/dev/null 2>&1
}

start_etcd() {
  start_daemon etcd "$BIN/etcd" \
    --name local --data-dir "$SAGAZ_STATE/etcd" \
    --listen-client-urls "http://$SAGAZ_HOST:$ETCD_PORT" \
    --advertise-client-urls "http://$SAGAZ_HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$SAGAZ_HOST:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://$SAGAZ_HOST:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://$SAGAZ_HOST:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
  wait_for etcd 30 curl -fsS "http://$SAGAZ_HOST:$ETCD_PORT/health"
}

start_apiserver() {
  # 10.0.0.0/24 only names Service IPs inside the API; nothing is routed there.
  # The requestheader/proxy-client flags turn on the aggregation layer (APIServices). Without
  # --enable-aggregator-routing it resolves a Service to its cluster IP, or, for an
  # ExternalName Service, to externalName:port, which is how an APIService reaches a process on
  # loopback here (no kube-proxy, no pod network; Endpoints refuse loopback addresses).
  # --profiling serves /debug/pprof to admins: `make bench PROFILE=1` profiles the API server.
  start_daemon kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://$SAGAZ_HOST:$ETCD_PORT" \
    --bind-address "$SAGAZ_HOST" --advertise-address "$SAGAZ_HOST" \
    --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" \
    --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode Node,RBAC \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
    --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --allow-privileged=true --profiling=true \
    --endpoint-reconciler-type none
  wait_for kube-apiserver 90 api_ready
}

start_controllers() {
  # As on a real cluster, each controller acts as its own service account (RBAC applies).
  start_daemon kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$SAGAZ_STATE/controller-manager.kubeconfig" \
    --bind-address "$SAGAZ_HOST" --secure-port 0 \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --leader-elect=false --use-service-account-credentials=true \
    --controllers '*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-route' \
    --concurrent-job-syncs 20 --concurrent-deployment-syncs 10
  start_daemon kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$SAGAZ_STATE/scheduler.kubeconfig" \
    --bind-address "$SAGAZ_HOST" --secure-port 0 --leader-elect=false
}

start_kwok() {
  start_daemon kwok "$BIN/kwok" \
    --kubeconfig "$SAGAZ_STATE/kwok.kubeconfig" \
    --config "$REPO_ROOT/hack/kwok/stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 10.0.1.1 --cidr 10.0.2.0/24 --server-address "$SAGAZ_HOST:0"
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" apply -f "$REPO_ROOT/hack/kwok/node.yaml" >/dev/null
  wait_for "the kwok node to take pods" 90 node_schedulable
}

# The ValidatingAdmissionPolicy (+ binding) from the chart, rendered as release "sagaz" (the
# objects a `helm install sagaz` would create); applying again is a no-op.
apply_admission_policy() {
  "$BIN/helm" template sagaz "$REPO_ROOT/charts/sagaz-operator" --kube-version "$K8S_VERSION" \
    --show-only templates/admission-policy.yaml |
    "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" apply --server-side -f - >/dev/null
}

# The node lifecycle controller lifts the not-ready taint once kwok reports the node Ready.
node_schedulable() {
  local taints
  taints=$("$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" get node kwok-node-0 \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.spec.taints}')
  [[ $taints == "True " ]]
}

up() {
  local started=$SECONDS
  command -v openssl >/dev/null || die "openssl is needed for the cluster certificates"
  "$REPO_ROOT/hack/tools.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm
  load_ports
  make_pki
  local server="https://$SAGAZ_HOST:$APISERVER_PORT"
  for name in admin controller-manager scheduler kwok; do write_kubeconfig "$name" "$server"; done
  start_etcd
  start_apiserver
  start_controllers
  start_kwok
  apply_admission_policy
  log "cluster ready at $server in $((SECONDS - started))s (KUBECONFIG=$KUBECONFIG_ADMIN)"
}

# One write outside the API's keys, then a compaction up to it through etcd's HTTP gateway:
# every resource version from before is gone, whether a watch is served by the API server's
# cache (rebuilt at the new revision) or by etcd itself.
expire_watches() {
  local url="http://$SAGAZ_HOST:$ETCD_PORT/v3" revision
  revision=$(curl -fsS -X POST "$url/kv/put" -d "{\"key\":\"$(printf sagaz-expire | base64)\",\"value\":\"MQ==\"}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])')
  curl -fsS -X POST "$url/kv/compaction" -d "{\"revision\":\"$revision\",\"physical\":true}" >/dev/null
  log "etcd compacted at revision $revision"
}

restart_apiserver() {
  load_ports
  stop_daemon kube-apiserver
  if [[ ${1:-} == --expire-watches ]]; then expire_watches; fi
  start_apiserver
}

down() {
  for name in "${COMPONENTS[@]}"; do stop_daemon "$name"; done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  reset) down; rm -rf "$SAGAZ_STATE/etcd" "$PKI" "$PORTS" "$SAGAZ_STATE"/*.kubeconfig ;;
  status) load_ports; api_ready ;;
  restart-apiserver) restart_apiserver "${2:-}" ;;
  *) die "usage: $0 up|down|reset|status|restart-apiserver" ;;
esac
