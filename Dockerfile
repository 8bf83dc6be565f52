# The aiaudit workers and CLI for the production-shaped stack (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aiaudit ./aiaudit
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY infra ./infra
COPY detectors ./detectors
RUN pip install --no-cache-dir '.[server]' && useradd --system --uid 10001 aiaudit
USER aiaudit
ENTRYPOINT ["aiaudit"]
