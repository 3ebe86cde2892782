# facer's image: `facer serve` on 0.0.0.0:23535, the SQLite store on the volume /data.
#
#   docker build -t facer .
#   docker run -d -p 23535:23535 -v facer-data:/data -e FACER_API_KEY=... facer
#
# GPU: --build-arg BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 --build-arg ONNXRUNTIME=onnxruntime-gpu
# (onnxruntime-gpu from PyPI is built for CUDA 13 and cuDNN 9; the base must carry those).
# No network in the build: pip download into a folder of the build context, then
# --build-arg WHEELHOUSE=wheelhouse (container/build.sh does both). See docs/container.md.

# Any image with Python 3.11+ as `python3`, or a Debian/Ubuntu image where apt can install it.
ARG BASE=python:3.11-slim

FROM ${BASE} AS builder
ARG EXTRAS=server,postgres
ARG ONNXRUNTIME=onnxruntime
ARG WHEELHOUSE=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN if ! python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# The dependencies first, in a layer of their own; `wheelhouse*` copies the wheels of a
# wheelhouse/ folder when the build context has one, and nothing otherwise.
COPY container/requirements.py container/install.sh /src/container/
COPY pyproject.toml wheelhouse* /src/deps/
RUN EXTRAS="$EXTRAS" ONNXRUNTIME="$ONNXRUNTIME" WHEELHOUSE="$WHEELHOUSE" sh /src/container/install.sh deps
COPY . /src
RUN WHEELHOUSE="$WHEELHOUSE" sh /src/container/install.sh facer

FROM ${BASE}
# The runtime needs Python, nothing else: no compiler, no pip, no package lists.
RUN if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel >/dev/null 2>&1 || true; \
    fi \
    && rm -rf /root/.cache \
    && useradd --uid 10001 --user-group --home-dir /home/facer --create-home --shell /usr/sbin/nologin facer \
    && mkdir -p /data && chown 10001:10001 /data && chmod 0700 /data
COPY --from=builder /opt/facer /opt/facer
COPY container/entrypoint.sh /usr/local/bin/facer-entrypoint
ENV PATH=/opt/facer/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/facer \
    FACER_DB=/data/facer.db \
    FACER_SERVER_HOST=0.0.0.0 \
    FACER_SERVER_PORT=23535
USER 10001:10001
WORKDIR /home/facer
VOLUME ["/data"]
EXPOSE 23535
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/facer/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('FACER_SERVER_PORT', '23535'), timeout=4)"]
ENTRYPOINT ["/usr/local/bin/facer-entrypoint"]
CMD ["serve"]
