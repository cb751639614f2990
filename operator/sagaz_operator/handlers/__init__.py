"""Kopf registrations. Thin on purpose: parse the body, call a service, report."""
