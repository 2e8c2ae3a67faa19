# 8here-emulator: the Open Links API emulator on 0.0.0.0:8080, live links kept in the /data volume.
#
#   docker build -t 8here-emulator .
#   docker run --rm -p 127.0.0.1:8080:8080 -v 8here-data:/data 8here-emulator
#
# Every `serve` flag is also an EMULATOR_<FLAG> variable (EMULATOR_SANDBOX_SIZE, EMULATOR_NO_CONTROL,
# EMULATOR_CONTROL_TOKEN, EMULATOR_CORS_ORIGINS, ...), so `docker run -e ...` configures it; arguments
# after the image name replace `serve` (e.g. `serve --short-base http://localhost:8080`).
#
# BASE may be any Debian-like image whose python3 (3.11 or later) has the venv module. Where no
# registry can be reached, CI builds one with debootstrap and passes it in (.ci/container.sh).
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
# Optional: the index pip installs from (pip reads it from the environment; CI passes the host's
# own pip setting when it has one). Unset or empty: pip's default.
ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# A virtual environment: works on the official image and on a Debian python3 that refuses a
# system-wide `pip install` (PEP 668). First the dependencies (and the build backend) that
# pyproject.toml names, in their own layer, which stays cached while only the code changes.
COPY pyproject.toml /src/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/python -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb')); print('\n'.join(p['build-system']['requires'] + p['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
# Then the project itself, a plain (not editable) install: contract/ and fixtures/ travel inside
# the wheel.
COPY . /src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation /src \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/8here-emulator serve --help > /dev/null

FROM ${BASE}
LABEL org.opencontainers.image.title="8here-emulator" \
      org.opencontainers.image.description="Local deterministic emulator of the 8here Open Links API" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EMULATOR_HOST=0.0.0.0 \
    EMULATOR_PORT=8080 \
    EMULATOR_DB=/data/emulator.db
RUN groupadd --system --gid 10001 emulator \
 && useradd --system --uid 10001 --gid emulator --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin emulator \
 && mkdir -p /data \
 && chown emulator:emulator /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_emulator/health' % os.environ.get('EMULATOR_PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["8here-emulator"]
CMD ["serve"]
