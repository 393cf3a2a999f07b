# The nepse_mlops image: the locked environment, the package, and the project (notebooks, pipeline.yaml, env.yaml) in /app.
#   docker build -t nepse-mlops:latest .
#   docker run --rm -v nepse-data:/data nepse-mlops:latest nepse-mlops run --set products=/data/products \
#       --set reports=/data/reports --set tracking_uri=sqlite:////data/products/mlflow.db
# `nepse-mlops export argo` runs one task per step in this image (README: "Scale-out").
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PLOOMBER_STATS_ENABLED=false \
    PLOOMBER_VERSION_CHECK_DISABLED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1

RUN pip install --no-cache-dir 'uv==0.13.9'
WORKDIR /app

# The locked environment first: this layer is rebuilt only when the lock changes. Bytecode is compiled here because the
# non-root user cannot write it later, and every notebook kernel would otherwise compile mlflow, evidently and sklearn again.
COPY requirements.lock ./
RUN uv pip install --system --no-cache --compile-bytecode -r requirements.lock

# The package itself (not editable: the image never changes its code), then what Ploomber runs.
COPY pyproject.toml README.md ./
COPY nepse_mlops/ nepse_mlops/
RUN uv pip install --system --no-cache --compile-bytecode --no-deps .
COPY pipeline.yaml env.yaml ./
COPY nbs/ nbs/
COPY data/ data/

RUN useradd --create-home --uid 1000 nepse && mkdir -p products reports && chown -R nepse:nepse /app
USER nepse
CMD ["nepse-mlops", "run"]
