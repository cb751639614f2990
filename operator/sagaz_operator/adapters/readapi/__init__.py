"""The operator's read-only HTTP API (``SAGAZ_API_ADDRESS``): sagas, journals, outbox state.

Mutations never go through it: they are fields of the Saga object, written through the
apiserver, so RBAC decides who may. The API lives under ``/api/``; ``/`` is left for the web
UI, whose assets will be served from the package.
"""
