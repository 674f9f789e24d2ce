# fleetlet agent image.
#   docker build -t ghcr.io/fleetlet/fleetlet:0.1.0 .
# The runtime stage holds node, the production bundles (`npm run build`:
# dist/agent.mjs, dist/hub.mjs, dist/fleetlet.mjs, each one minified ES
# module with its source map) and better-sqlite3's loader and native binary:
# no TypeScript sources, no dev dependencies, no other node_modules.
# Bundled, an idle agent takes far less memory than running the sources
# (docs/footprint.md has the figures).
# test/unit/dockerfile-layout.test.ts assembles the same layout from this
# file's COPY lines and runs the entrypoint, so a wrong path fails a test.

# ── build: dependencies (esbuild is a dev one), the bundles, and the runtime's files staged in /runtime
# (web/ is the hub's dashboard app, built with the bundles; the image does not ship it: an agent never serves it)
FROM node:24-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund \
 && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY web ./web
COPY scripts/build.ts ./scripts/
RUN node scripts/build.ts --runtime-dir /runtime

# ── runtime: no compiler, no npm cache, no dev dependencies, not root
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /runtime/ ./
# The journal lives on a volume (PVC or hostPath); everything else is
# read-only, so the pod can run with readOnlyRootFilesystem.
RUN mkdir -p /var/lib/fleetlet \
 && chown 65532:65532 /var/lib/fleetlet \
 && chmod 0700 /var/lib/fleetlet
VOLUME ["/var/lib/fleetlet"]
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM itself (the agent stops gracefully).
# The agent's own bundle; `--entrypoint node <image> /app/dist/fleetlet.mjs` runs
# any other command (hub, status, rollout, keygen, sign). Add
# NODE_OPTIONS=--enable-source-maps for stack traces in TypeScript terms
# (it costs ~90 MiB resident while on, so it is off by default).
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/agent.mjs"]
