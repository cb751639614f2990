# The operator and the outbox relay worker in one image:
#   sagaz-operator        (default command)
#   sagaz-outbox-worker   (what OutboxWorker pods run)
# Runs as a non-root user and needs no writable file system (readOnlyRootFilesystem).
# Not built in this project's CI: its machines have no Docker engine.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/sagaz \
 && /opt/sagaz/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/sagaz/bin/pip install --no-cache-dir '.[tracing]'

FROM python:3.11-slim
COPY --from=build /opt/sagaz /opt/sagaz
ENV PATH=/opt/sagaz/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["sagaz-operator"]
CMD ["--all-namespaces", "--liveness", "http://0.0.0.0:8081/healthz"]
