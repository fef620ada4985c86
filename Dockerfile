# The synchronization service: one image for web (gunicorn), worker and beat (Celery).
# Build: docker build -t syncservice .   Run the whole stack: docker compose up --build
FROM python:3.11-slim

# PYTHONPATH: the source tree in /app comes first on the path, also for `celery`, whose script lives
# elsewhere: one copy of the code, with its templates (the wheel `pip install .` builds has none).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, in their own layer: a change to the code does not reinstall them.
# gunicorn is the production web server of this image only, and Flower the optional monitor of the compose
# stack (its `flower` profile); neither is a project dependency.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "gunicorn>=23,<24" "flower>=2.0,<3" \
    && rm /tmp/requirements.txt

COPY . .
# collectstatic runs as the embedded service, which makes its keys in its data directory: an aside one,
# removed, so that no key is baked into the image.
RUN pip install --no-deps . \
    && SYNC_DATA_DIR=/tmp/build-data python manage.py collectstatic --no-input -v 0 \
    && rm -rf /tmp/build-data \
    && useradd --system --no-create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /app/var/media \
    && chown -R app:app /app/var

# Static files are collected into /app/var/static for a reverse proxy to serve; gunicorn does not.
# /app/var/media holds file sources' uploads and downloads: made here so a new volume mounted on it is app's.
USER app

EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
