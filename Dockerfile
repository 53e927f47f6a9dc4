# codexbox image: tini (PID 1) -> codexbox entrypoint (root: validate, refresh, fix ownership)
# -> codex as the unprivileged `codex` user. Contract: image/README.md.
ARG BASE_IMAGE=node:22-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /build
COPY image/extra-ca/ /usr/local/share/ca-certificates/codexbox/
RUN cat /usr/local/share/ca-certificates/codexbox/*.crt > /tmp/extra-ca.pem 2>/dev/null || true
ENV NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error \
      "esbuild@$(node -p "require('./package-lock.json').packages['node_modules/esbuild'].version")"
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/bundle-entrypoint.mjs scripts/
COPY src/ src/
COPY entrypoint/ entrypoint/
RUN node scripts/bundle-entrypoint.mjs

FROM ${BASE_IMAGE}
ARG CODEX_VERSION=0.169.0
ARG CODEX_UID=1000
ARG CODEX_GID=1000

# Extra CA bundle for TLS-intercepting proxies: any *.crt in image/extra-ca/ joins the system
# trust store, which npm (build), node and codex (run time) then use. TLS is never disabled.
COPY image/extra-ca/ /usr/local/share/ca-certificates/codexbox/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

RUN npm install -g --no-audit --no-fund --loglevel=error "@openai/codex@${CODEX_VERSION}" \
 && npm cache clean --force \
 && rm -rf /root/.npm /tmp/*

# The official node images own uid/gid 1000 as `node`; codex takes that slot.
RUN existing_user="$(getent passwd "${CODEX_UID}" | cut -d: -f1)"; \
    if [ -n "$existing_user" ]; then userdel -r "$existing_user" 2>/dev/null || userdel "$existing_user"; fi; \
    existing_group="$(getent group "${CODEX_GID}" | cut -d: -f1)"; \
    if [ -n "$existing_group" ]; then groupdel "$existing_group"; fi; \
    groupadd --gid "${CODEX_GID}" codex \
 && useradd --uid "${CODEX_UID}" --gid codex --create-home --home-dir /home/codex --shell /bin/bash codex \
 && install -d -o codex -g codex -m 0700 /codex-home \
 && install -d -o codex -g codex -m 0755 /artifacts /workspace

COPY --from=build /build/dist/image/ /usr/local/lib/codexbox/
COPY image/bin/ /usr/local/bin/
COPY demo/codex-home/auth.json /usr/local/share/codexbox/demo/auth.json

ENV CODEX_HOME=/codex-home \
    CODEXBOX_ARTIFACTS_DIR=/artifacts \
    CODEXBOX_RUN_USER=codex \
    CODEXBOX_CODEX_VERSION=${CODEX_VERSION}
VOLUME ["/codex-home"]
WORKDIR /workspace

LABEL org.opencontainers.image.title="codexbox" \
      org.opencontainers.image.description="The OpenAI Codex CLI in a throw-away container, with your own login and no leaked token" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.codexbox.codex-version="${CODEX_VERSION}" \
      io.codexbox.codex-uid="${CODEX_UID}" \
      io.codexbox.codex-gid="${CODEX_GID}" \
      io.codexbox.codex-home="/codex-home"

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "codexbox-entrypoint"]
CMD ["codex", "--help"]
