# syntax=docker/dockerfile:1
#
# keyward's container image:
#
#   docker build -t keyward .
#   docker run -p 9191:9191 -p 9192:9192 -p 9193:9193 -v keyward-data:/app/data keyward
#
# The final image holds Node 20 (slim), the compiled server (dist/), the .proto files
# (gRPC reflection reads them), package.json and the production dependencies; no
# compiler, no dev dependency, no src/ or test/. It runs as UID/GID 10001 and writes only
# to /app/data (the default SQLite database, its generated hash secret and the usage
# journal). docs/deployment.md describes it.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: dev dependencies, TypeScript -> dist/ ---------------------------------
# --ignore-scripts: `prepare` would build before the sources are copied, and tsc needs
# no native module, so nothing has to compile here.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
COPY scripts/build-console.mjs ./scripts/build-console.mjs
RUN npm run build

# ---- deps: production dependencies only, better-sqlite3 compiled from source ------
# --ignore-scripts skips `prepare` (it runs the build, without TypeScript here) and
# every install script; `npm rebuild better-sqlite3` then runs that one package's, with
# the toolchain of this stage. Building from source downloads nothing but the npm
# packages: node-gyp takes the headers of the image's own Node (npm_config_nodedir).
# Only the compiled addon of better-sqlite3 is kept (not its C sources or objects),
# and the final image takes node_modules alone from this stage.
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 --build-from-source \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node . \
 && rm -rf build deps src \
 && mkdir -p build/Release \
 && mv better_sqlite3.node build/Release/ \
 && cd /src \
 && node -e "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()"

# ---- final ----------------------------------------------------------------------
FROM ${NODE_IMAGE}
# A fixed numeric user, so that Kubernetes' runAsNonRoot can check it without a name.
RUN groupadd --system --gid 10001 keyward \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin keyward \
 && mkdir -p /app/data \
 && chown 10001:10001 /app/data
WORKDIR /app
# Owned by root and read-only to keyward: only /app/data is writable.
COPY package.json ./
COPY proto ./proto
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist

# Listen on every interface: the defaults (127.0.0.1) are unreachable from outside a
# container. KEYWARD_DATABASE_URL keeps its default, sqlite:./data/keyward.db, i.e. in
# the volume. Anything else is set with -e / env: as usual.
ENV NODE_ENV=production \
    KEYWARD_AUTHZ_LISTEN=0.0.0.0:9191 \
    KEYWARD_ADMIN_LISTEN=0.0.0.0:9192 \
    KEYWARD_HTTP_LISTEN=0.0.0.0:9193 \
    KEYWARD_CONSOLE_LISTEN=0.0.0.0:9194

USER 10001:10001
VOLUME ["/app/data"]
# 9191 ext_authz Check and Envoy's access-log stream, 9192 KeyAdmin, 9193 /metrics,
# /healthz, /readyz, 9194 the web console.
EXPOSE 9191 9192 9193 9194

# `keyward health` asks /healthz on KEYWARD_HTTP_LISTEN (loopback for 0.0.0.0): no curl
# needed. Liveness only; readiness (/readyz) is for the orchestrator to route by.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "dist/cli/main.js", "health"]

# Node runs as PID 1 with no init: keyward installs SIGTERM and SIGINT handlers (PID 1
# gets no default signal actions), shuts down gracefully within
# KEYWARD_SHUTDOWN_DEADLINE_SECONDS and starts no child processes, so there are no
# zombies to reap. `docker run --init` adds tini if wanted.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
