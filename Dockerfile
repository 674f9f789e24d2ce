# fleetlet agent image.
#   docker build -t ghcr.io/fleetlet/fleetlet:0.1.0 .
# Node 24 runs our TypeScript directly (type stripping), so there is no
# compile step: the image holds bin/ and src/ as they are in the repository.
# (Node does not strip types under node_modules; ours are outside it.)
# test/integration/dockerfile-layout.test.ts assembles the same layout from
# this file's COPY lines and runs the entrypoint, so a wrong path fails a test.

# ── build: production dependencies only; better-sqlite3 compiles here if no prebuilt binary fits
FROM node:24-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ── runtime: no compiler, no npm cache, no dev dependencies, not root
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
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
ENTRYPOINT ["node", "/app/bin/fleetlet.ts", "agent"]
