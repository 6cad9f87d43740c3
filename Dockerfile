# gate serve under gunicorn, built without network access from a local base image and wheels downloaded
# beforehand (docs/proxy.md, "Container image, built offline"):
#   python3 -m pip download --dest wheels --only-binary :all: --python-version 3.11 '.[fleet]' setuptools
#   docker build --network=none --build-arg BASE=python:3.11-slim -t gate .
# BASE is any Debian-like image with python3 (3.11 or newer, with the venv module) and ca-certificates.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
COPY wheels/ /wheels/
COPY pyproject.toml README.md /src/
COPY gate/ /src/gate/
# gate, its dependencies and the fleet extra (Redis, PostgreSQL clients) from /wheels only; then pip and
# setuptools leave the runtime venv.
RUN python3 -m venv /opt/gate \
 && /opt/gate/bin/python -m pip install --no-index --find-links /wheels --no-cache-dir '/src[fleet]' \
 && /opt/gate/bin/python -m pip uninstall --yes pip setuptools \
 && rm -rf /opt/gate/bin/activate* /opt/gate/bin/Activate.ps1

FROM ${BASE}
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/gate --shell /usr/sbin/nologin gate \
 && mkdir -p /var/cache/gate /etc/gate/policies \
 && chown gate:gate /var/cache/gate
COPY --from=build /opt/gate /opt/gate
COPY docker/healthcheck.py /opt/gate/healthcheck.py
ENV PATH=/opt/gate/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/gate
EXPOSE 8080
VOLUME ["/var/cache/gate"]
# Probes the port gate serve listens on, so a `--port` given at `docker run` is followed.
HEALTHCHECK --interval=30s --timeout=15s --start-period=20s CMD ["python3", "/opt/gate/healthcheck.py"]
ENTRYPOINT ["gate", "serve", "--host", "0.0.0.0", "--port", "8080", "--cache-dir", "/var/cache/gate", "--workers", "2"]
CMD ["--policy", "/etc/gate/policies"]
