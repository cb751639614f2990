"""Orchestration: runs domain decisions through the adapters."""
