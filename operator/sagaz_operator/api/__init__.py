"""Pydantic models of the sagaz.io/v1alpha1 custom resources and the CRD generator.

The models are the single source of the API: ``crds/*.yaml`` are generated from them
(``python -m sagaz_operator.api.crdgen``) and a test fails when the committed files drift.
"""
