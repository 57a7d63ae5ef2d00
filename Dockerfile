# syntax=docker/dockerfile:1
# vecmon container image: wheels are built in the first stage and installed into a slim
# runtime stage, which has no compiler, no build tools and no source tree.
#
#   docker build -t vecmon .                       # BuildKit; wheels built here (needs the package index)
#   make image                                     # offline with buildah: deploy/container/build.sh
#                                                  # builds the wheels beforehand into dist/wheels
#   docker run -v ./vecmon.yaml:/etc/vecmon/vecmon.yaml:ro -v vecmon-state:/var/lib/vecmon \
#     -p 9765:9765 vecmon
#
# The config is read from /etc/vecmon/vecmon.yaml (mount it; secrets as files or ${ENV}), the
# recall-probe state is kept in the /var/lib/vecmon volume, and the process runs as uid 10001.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS wheels
COPY . /src
# Prebuilt wheels in dist/wheels (an offline build) are used as they are; otherwise vecmon and
# its dependencies are built into wheels here.
RUN if ls /src/dist/wheels/vecmon-*.whl >/dev/null 2>&1; then \
      cp -r /src/dist/wheels /wheels; \
    else \
      python3 -m venv /tmp/build-venv \
      && /tmp/build-venv/bin/pip wheel --no-cache-dir --wheel-dir /wheels /src; \
    fi

FROM ${BASE_IMAGE}
ARG VECMON_UID=10001
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python3 -m venv /opt/vecmon \
    && /opt/vecmon/bin/pip install --no-index --no-cache-dir --find-links /wheels vecmon \
    && /opt/vecmon/bin/pip uninstall --yes --quiet setuptools pip \
    && useradd --uid "${VECMON_UID}" --user-group --home-dir /var/lib/vecmon --no-create-home \
         --shell /usr/sbin/nologin vecmon \
    && mkdir -p /etc/vecmon /var/lib/vecmon \
    && chown "${VECMON_UID}:${VECMON_UID}" /var/lib/vecmon \
    && chmod 0700 /var/lib/vecmon

ENV PATH=/opt/vecmon/bin:$PATH \
    VECMON_CONFIG=/etc/vecmon/vecmon.yaml \
    VECMON_STATE_DIR=/var/lib/vecmon \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/vecmon"]
WORKDIR /var/lib/vecmon
USER ${VECMON_UID}:${VECMON_UID}
EXPOSE 9765
# /health answers 200 while the daemon serves (no curl in the image: Python's urllib).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9765/health', timeout=4).status != 200)"]
ENTRYPOINT ["vecmon", "--log-format", "json"]
CMD ["run", "--listen", "0.0.0.0:9765"]
