# The aiaudit workers and CLI for the production-shaped stack (docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aiaudit ./aiaudit
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY infra ./infra
COPY detectors ./detectors
RUN pip install --no-cache-dir '.[server]' && useradd --system --uid 10001 aiaudit \
    && mkdir -p /data && chmod 1777 /data
# /data: the state folder (AIAUDIT_LOCAL__STATE_DIR), a volume in docker-compose.yml. Writable by the
# uid compose runs the workers as (AIAUDIT_UID, the keys' owner), whatever it is.
USER aiaudit
ENV AIAUDIT_LOCAL__STATE_DIR=/data
ENTRYPOINT ["aiaudit"]
