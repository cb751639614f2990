#!/usr/bin/env bash
# Makes the pinned local-stack binaries available and links them into .dev/bin:
#   kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm
#
# Where a binary comes from, first match wins:
#   1. the machine-wide cache  $SAGAZ_CACHE/bin/<component>-<version>/  (built before)
#   2. $KUBEBUILDER_ASSETS      (controller-runtime's setup-envtest: etcd, kube-apiserver, kubectl)
#   3. the PATH                 (anything already installed, whatever its version)
#   4. a build from the Go module proxy (hack/build/<component>/go.mod), into the cache.
# The cold build of the Kubernetes binaries takes a long while on 2 cores; it happens once
# per machine and version. Set SAGAZ_BUILD_ONLY=1 to ignore 2. and 3.
source "$(dirname "$0")/lib.sh"

BIN_DIR=$SAGAZ_STATE/bin
mkdir -p "$BIN_DIR"

k8s_ldflags() {
  local major minor flags=""
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "-s -w$flags"
}

# component NAME: prints "<build module dir> <version> <go package> <ldflags>" for NAME.
component() {
  case $1 in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl)
      echo "k8s $K8S_VERSION k8s.io/kubernetes/cmd/$1 $(k8s_ldflags)" ;;
    etcd) echo "etcd $ETCD_VERSION go.etcd.io/etcd/server/v3 -s -w" ;;
    kwok) echo "kwok $KWOK_VERSION sigs.k8s.io/kwok/cmd/kwok -s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" ;;
    # helm's default Kubernetes version (for `helm template`) is stamped as its release does.
    helm) echo "helm $HELM_VERSION-k8s1.34 helm.sh/helm/v3/cmd/helm -s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34" ;;
    *) die "unknown component $1" ;;
  esac
}

build() {
  local name=$1 module version package ldflags target started ticker
  read -r module version package ldflags <<<"$(component "$name")"
  target=$SAGAZ_CACHE/bin/$name-$version
  command -v go >/dev/null ||
    die "Go 1.24 or newer is needed to build $name $version (https://go.dev/dl), or put the binary on PATH"
  log "building $name $version from the Go module proxy (once per machine; progress every 30s)"
  started=$SECONDS
  ( while sleep 30; do log "  ... still building $name ($((SECONDS - started))s)"; done ) &
  ticker=$!
  mkdir -p "$target.tmp"
  if ! (cd "$REPO_ROOT/hack/build/$module" \
        && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" \
             -o "$target.tmp/$name" "$package"); then
    kill "$ticker" 2>/dev/null; die "building $name failed"
  fi
  kill "$ticker" 2>/dev/null || true
  rm -rf "$target"; mv "$target.tmp" "$target"
  log "built $name in $((SECONDS - started))s"
}

# resolve NAME: prints the path of a usable NAME binary, building it if nothing else fits.
resolve() {
  local name=$1 module version rest cached
  read -r module version rest <<<"$(component "$name")"
  cached=$SAGAZ_CACHE/bin/$name-$version/$name
  if [[ -x $cached ]]; then echo "$cached"; return; fi
  if [[ -z ${SAGAZ_BUILD_ONLY:-} ]]; then
    if [[ -n ${KUBEBUILDER_ASSETS:-} && -x $KUBEBUILDER_ASSETS/$name ]]; then
      echo "$KUBEBUILDER_ASSETS/$name"; return
    fi
    local found
    if found=$(PATH=${PATH//$BIN_DIR:/} command -v "$name"); then echo "$found"; return; fi
  fi
  build "$name"
  echo "$cached"
}

main() {
  local names=("$@") found
  ((${#names[@]})) || names=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)
  for name in "${names[@]}"; do
    found=$(resolve "$name")  # a separate assignment, so a failed build stops the script
    ln -sfn "$found" "$BIN_DIR/$name"
  done
}

main "$@"
