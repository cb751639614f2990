"""All I/O: the Kubernetes API, PostgreSQL, Kafka and HTTP participants."""
