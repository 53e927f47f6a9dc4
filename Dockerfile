# codexbox image: tini (PID 1) -> codexbox entrypoint (root: validate, refresh, fix ownership)
# -> codex as the unprivileged `codex` user. Contract: image/README.md.
ARG BASE_IMAGE=node:22-bookworm-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /build
# tini and the CA bundle are made here and copied over, so the runtime image carries no apt state.
# Extra CA certificates (TLS-intercepting proxies): any *.crt in image/extra-ca/ joins the bundle.
COPY image/extra-ca/ /usr/local/share/ca-certificates/codexbox/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini ca-certificates \
 && update-ca-certificates >/dev/null
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
# The lock file: package-lock.json in a checkout, npm-shrinkwrap.json in the npm package.
COPY package.json package-lock.jso[n] npm-shrinkwrap.jso[n] ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && lock="$(ls npm-shrinkwrap.json package-lock.json 2>/dev/null | head -n 1)" \
 && npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error \
      "esbuild@$(node -p "require('./$lock').packages['node_modules/esbuild'].version")"
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/bundle.mjs scripts/
COPY src/ src/
COPY entrypoint/ entrypoint/
RUN node scripts/bundle.mjs --image-only

FROM ${BASE_IMAGE}
ARG CODEX_VERSION=0.169.0
ARG CODEX_UID=1000
ARG CODEX_GID=1000

# The system trust store plus any extra CA, used by npm (build), node and codex (run time). TLS
# verification is never disabled. The .crt files stay so a later update-ca-certificates keeps them.
COPY --from=build /usr/bin/tini-static /usr/bin/tini
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY image/extra-ca/ /usr/local/share/ca-certificates/codexbox/
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# The entrypoint starts codex's native binary itself (with the two variables its node launcher
# would set), saving a second node start per run.
# The binary for the build's architecture (BuildKit's TARGETARCH, else the base's own).
ARG TARGETARCH
RUN arch="${TARGETARCH:-$(dpkg --print-architecture)}" \
 && case "$arch" in \
      amd64) triple=x86_64-unknown-linux-musl ;; \
      arm64) triple=aarch64-unknown-linux-musl ;; \
      *) echo "codexbox: no codex binary for architecture $arch" >&2; exit 1 ;; \
    esac \
 && npm install -g --no-audit --no-fund --loglevel=error "@openai/codex@${CODEX_VERSION}" \
 && npm cache clean --force \
 && rm -rf /root/.npm /tmp/* \
 && native="$(find /usr/local/lib/node_modules/@openai/codex -path "*/vendor/${triple}/bin/codex" -type f | head -n 1)" \
 && test -x "$native" \
 && install -d /usr/local/lib/codexbox/bin \
 && ln -s "$native" /usr/local/lib/codexbox/bin/codex \
 && rm /usr/local/bin/codex

# The official node images own uid/gid 1000 as `node`; codex takes that slot. No setuid or setgid
# programs stay (su, passwd, mount…): an agent in a container started without no-new-privileges
# (a Harbor exec, a plain docker run) has nothing to climb with.
RUN existing_user="$(getent passwd "${CODEX_UID}" | cut -d: -f1)"; \
    if [ -n "$existing_user" ]; then userdel -r "$existing_user" 2>/dev/null || userdel "$existing_user"; fi; \
    existing_group="$(getent group "${CODEX_GID}" | cut -d: -f1)"; \
    if [ -n "$existing_group" ]; then groupdel "$existing_group"; fi; \
    groupadd --gid "${CODEX_GID}" codex \
 && useradd --uid "${CODEX_UID}" --gid codex --create-home --home-dir /home/codex --shell /bin/bash codex \
 && install -d -o codex -g codex -m 0700 /codex-home \
 && install -d -o codex -g codex -m 0755 /artifacts /workspace \
 && install -d -o root -g root -m 0700 /var/lib/codexbox/vault \
 && { find / -xdev -type f -perm /6000 -exec chmod a-s {} + 2>/dev/null || true; }

COPY --from=build /build/dist/image/ /usr/local/lib/codexbox/
COPY image/bin/ /usr/local/bin/
COPY demo/codex-home/auth.json /usr/local/share/codexbox/demo/auth.json

ENV CODEX_HOME=/codex-home \
    CODEXBOX_CODEX_BIN=/usr/local/lib/codexbox/bin/codex \
    CODEXBOX_CODEX_PACKAGE_ROOT=/usr/local/lib/node_modules/@openai/codex \
    CODEXBOX_CODEX_VERSION=${CODEX_VERSION}
# /codex-home is codex's; the vault (refresh token, API key, what was staged) is root's alone.
VOLUME ["/codex-home", "/var/lib/codexbox/vault"]
WORKDIR /workspace

# What codexbox build compares to skip a rebuild of the same sources (unknown: built another way).
ARG CONTEXT_DIGEST=unknown
ARG CODEXBOX_VERSION=unknown
LABEL org.opencontainers.image.title="codexbox" \
      org.opencontainers.image.description="The OpenAI Codex CLI in a throw-away container, with your own login and no leaked token" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.codexbox.codex-version="${CODEX_VERSION}" \
      io.codexbox.codex-uid="${CODEX_UID}" \
      io.codexbox.codex-gid="${CODEX_GID}" \
      io.codexbox.codex-home="/codex-home" \
      io.codexbox.version="${CODEXBOX_VERSION}" \
      io.codexbox.context-digest="${CONTEXT_DIGEST}"

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "codexbox-entrypoint"]
CMD ["codex", "--help"]
