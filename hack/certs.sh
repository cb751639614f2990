# Certificates for the local control plane. Sourced by hack/cluster.sh.
#
# One self-signed CA signs the API server's serving certificate and a client certificate per
# identity (admin in system:masters, the controller manager, the scheduler, kwok), so RBAC is
# exercised exactly as on a real cluster. A separate key pair signs service account tokens.
#
# The aggregation layer has its own CA, as kubeadm sets it up: front-proxy-ca signs the one
# client certificate (front-proxy-client) the API server presents when it proxies a request to
# an aggregated API server, which believes the X-Remote-* headers only on such a connection.
# external-metrics is the serving certificate of the operator's external metrics API, for the
# Service name the aggregator checks (sagaz-external-metrics.sagaz-system.svc; see
# tests/harness/metrics_api.py).
EXTERNAL_METRICS_SAN="DNS:sagaz-external-metrics.sagaz-system.svc,DNS:localhost,IP:127.0.0.1"

# issue_cert NAME SUBJECT [SAN] [CA]: a key and a certificate signed by the CA (default: ca), in
# $PKI/NAME.{key,crt}.
issue_cert() {
  local name=$1 subject=$2 san=${3:-} ca=${4:-ca} ext
  [[ -f $PKI/$name.crt ]] && return 0
  ext=$(mktemp)
  if [[ -n $san ]]; then
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" >"$ext"
  else
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl req -new -newkey rsa:2048 -nodes -subj "$subject" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$ext" "$PKI/$name.csr"
}

# make_ca NAME: a self-signed CA in $PKI/NAME.{key,crt}.
make_ca() {
  [[ -f $PKI/$1.crt ]] && return 0
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sagaz-local-$1" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" 2>/dev/null
}

make_pki() {
  mkdir -p "$PKI"
  make_ca ca
  make_ca front-proxy-ca
  if [[ ! -f $PKI/sa.key ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  issue_cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  issue_cert admin "/O=system:masters/CN=sagaz-admin"
  issue_cert controller-manager "/CN=system:kube-controller-manager"
  issue_cert scheduler "/CN=system:kube-scheduler"
  issue_cert kwok "/O=system:masters/CN=kwok"
  issue_cert front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
  issue_cert external-metrics "/CN=sagaz-external-metrics" "$EXTERNAL_METRICS_SAN"
}

# write_kubeconfig NAME SERVER: a kubeconfig for the NAME client certificate.
write_kubeconfig() {
  local name=$1 server=$2
  cat >"$SAGAZ_STATE/$name.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: sagaz-local
  cluster:
    server: $server
    certificate-authority: $PKI/ca.crt
users:
- name: $name
  user:
    client-certificate: $PKI/$name.crt
    client-key: $PKI/$name.key
contexts:
- name: sagaz-local
  context: {cluster: sagaz-local, user: $name}
current-context: sagaz-local
KUBECONFIG
}
