"""Test harness: the real local components (cluster, PostgreSQL, Kafka) and participants."""
