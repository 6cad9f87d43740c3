# gate serve under gunicorn, built without network access: a local base image and wheels prepared beforehand.
#   python3 -m pip download -d wheels . setuptools wheel   # on a machine with index access (see docs/proxy.md)
#   docker build --network=none --build-arg BASE=python:3.11-slim -t gate .
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
COPY wheels/ /wheels/
COPY pyproject.toml README.md* /src/
COPY gate/ /src/gate/
RUN python -m pip wheel --no-index --find-links /wheels --no-deps --wheel-dir /wheels /src \
 && python -m venv /opt/gate \
 && /opt/gate/bin/pip install --no-index --find-links /wheels gate

FROM ${BASE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gate \
 && mkdir -p /var/cache/gate /etc/gate/policies \
 && chown gate /var/cache/gate
COPY --from=build /opt/gate /opt/gate
ENV PATH=/opt/gate/bin:$PATH PYTHONDONTWRITEBYTECODE=1
USER 10001
EXPOSE 8080
VOLUME ["/var/cache/gate"]
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/-/health')"]
ENTRYPOINT ["gate", "serve", "--host", "0.0.0.0", "--port", "8080", "--cache-dir", "/var/cache/gate", "--workers", "2"]
CMD ["--policy", "/etc/gate/policies"]
