# Pinned versions of everything the local stack builds or downloads. Changing a version
# changes the cache key, so the next `make up` builds the new one beside the old.
K8S_VERSION=v1.34.4          # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
ETCD_VERSION=v3.6.5
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.19.0
KAFKA_VERSION=4.1.0          # org.apache.kafka:kafka_2.13, KRaft mode
TEMPORAL_CLI_VERSION=v1.5.1  # github.com/temporalio/cli: `temporal server start-dev`, for make bench only
JAEGER_VERSION=v1.76.0       # github.com/jaegertracing/jaeger/cmd/jaeger (the v2 binary): the traces' receiver in tests
PROMETHEUS_VERSION=v0.316.0  # github.com/prometheus/prometheus (Prometheus 3.16): prometheus + promtool, for the alert and dashboard tests
