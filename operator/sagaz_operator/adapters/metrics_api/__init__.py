"""The external metrics API the HPAs of OutboxWorkers scale on (``SAGAZ_EXTERNAL_METRICS_*``).

Off unless ``SAGAZ_EXTERNAL_METRICS_ADDRESS`` is set: a cluster has one provider of
``external.metrics.k8s.io`` (an APIService per group and version), so the operator serves it
only where no KEDA or prometheus-adapter does.
"""
