"""``kubectl sagaz``: the kubectl plugin (the ``kubectl-sagaz`` executable).

It reads through the operator's read API (``--api URL``, ``SAGAZ_API_URL``, or the chart's
Service through the apiserver's service proxy) and changes sagas only through their levers
(``spec.suspend``, ``spec.abort``, ``spec.retry``) on the apiserver, with the user's own
kubeconfig and RBAC. ``validate`` runs the operator's own definition checks offline.

The top layer, like ``cli``: it may use every layer below it.
"""
