# One image for every role: `redpool worker`, `redpool produce`, `redpool sink`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY redpool ./redpool
COPY producer ./producer
COPY workers ./workers
COPY sink ./sink
COPY examples ./examples
RUN pip install --no-cache-dir .
# Children are replaced and tasks returned by the supervisor; it needs the signals itself.
STOPSIGNAL SIGTERM
