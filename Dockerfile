# fleetlet: one image for the agent (the default command) and the hub.
#   docker build -t ghcr.io/fleetlet/fleetlet:0.1.0 .
#   docker run ghcr.io/fleetlet/fleetlet:0.1.0 agent --help
#   docker run ghcr.io/fleetlet/fleetlet:0.1.0 hub --help
# The runtime stage holds node, the production bundles (`npm run build`:
# dist/agent.mjs, dist/hub.mjs, dist/fleetlet.mjs, each one minified ES
# module with its source map, and dist/image.mjs, which picks one by the first
# argument) and better-sqlite3's loader with its one native binary: no
# TypeScript sources, no dev dependencies, no npm, no shell, no other
# node_modules. Bundled, an idle agent takes far less memory than running the
# sources, and the image is a third of node:*-slim's size (docs/footprint.md).
# test/integration/image.test.ts builds this file with a real engine and runs
# the image, in a container and in the cluster.
#
# Behind a TLS-intercepting proxy, hand the build its CA bundle as a secret
# (it is mounted for the one RUN step and never stored in a layer):
#   docker build --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt .

# The base is pinned to an exact Node release; bump it deliberately.
# ── build: dependencies (esbuild is a dev one), the bundles, and the runtime's root filesystem staged in /runtime
FROM node:24.9.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# better-sqlite3 ships prebuilt binaries (N-API, glibc and musl, x64 and
# arm64) and loads them when nothing was compiled, so no install script runs:
# no node-gyp, no compiler, no download from the Node.js server. Only where
# no prebuilt binary loads (another platform) are compilers installed and the
# module compiled, against the base image's own Node headers (nodedir), so
# the npm registry and the Debian mirror are all a build needs.
RUN --mount=type=secret,id=ca-certificates \
    if [ -f /run/secrets/ca-certificates ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; fi; \
    npm ci --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && if ! node -e "new (require('better-sqlite3'))(':memory:').close()"; then \
      echo "no prebuilt better-sqlite3 binary loads here: compiling it" \
      && apt-get update \
      && apt-get install -y --no-install-recommends python3 make g++ \
      && npm_config_nodedir=/usr/local npm rebuild better-sqlite3 \
      && node -e "new (require('better-sqlite3'))(':memory:').close()"; \
    fi
COPY bin ./bin
COPY src ./src
# web/ is the hub dashboard's browser app: scripts/build.ts bundles it with the rest (dist/dashboard).
COPY web ./web
COPY scripts/build.ts ./scripts/
# /runtime becomes the image's whole filesystem: node and the C/C++ runtime
# libraries it and better-sqlite3 link against (as ldd lists them), /app from
# scripts/build.ts (bundles, better-sqlite3's loader and one binary), the
# journal directory, /tmp, and a passwd naming the non-root user.
# V8's compile cache (NODE_COMPILE_CACHE) for the agent's and the hub's
# bundles is made here, in the runtime's own filesystem, as the runtime's user
# and with each process's node flags (Node keys the cache by all three), so
# a process in the image deserializes its bundle's compiled code instead of
# parsing 2.4 MB of JavaScript: faster to Ready, and less memory
# (docs/footprint.md). Three: the hub and the agent with the ENTRYPOINT's
# flags (`docker run`), and the agent with its own flags, the command its
# Deployment and DaemonSet run (manifests/overlays; test/unit/
# agent-command.test.ts keeps them in step). The image's root filesystem may
# be read-only; the cache is only read then.
RUN node scripts/build.ts --runtime-dir /runtime/app \
 && mkdir -p /runtime/usr/local/bin /runtime/etc /runtime/tmp /runtime/var/lib/fleetlet \
 && cp /usr/local/bin/node /runtime/usr/local/bin/node \
 && for lib in $(ldd /usr/local/bin/node $(find /runtime/app -name '*.node') | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do \
      cp --parents -L "$lib" /runtime; \
    done \
 && cp /etc/nsswitch.conf /runtime/etc/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /runtime/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /runtime/etc/group \
 && chmod 1777 /runtime/tmp \
 && chown 65532:65532 /runtime/var/lib/fleetlet \
 && chmod 0700 /runtime/var/lib/fleetlet \
 && chroot /runtime /usr/local/bin/node -e "new (require('/app/node_modules/better-sqlite3'))(':memory:').close()" \
 && mkdir /runtime/app/.compile-cache \
 && chown 65532:65532 /runtime/app/.compile-cache \
 && NODE_COMPILE_CACHE=/app/.compile-cache chroot --userspec=65532:65532 /runtime /usr/local/bin/node --max-semi-space-size=1 /app/dist/image.mjs hub --help > /dev/null \
 && NODE_COMPILE_CACHE=/app/.compile-cache chroot --userspec=65532:65532 /runtime /usr/local/bin/node --max-semi-space-size=1 /app/dist/image.mjs agent --help > /dev/null \
 && NODE_COMPILE_CACHE=/app/.compile-cache chroot --userspec=65532:65532 /runtime /usr/local/bin/node --max-semi-space-size=1 --single-threaded --optimize-for-size /app/dist/image.mjs agent --help > /dev/null

# ── runtime: only what /runtime holds; not root
FROM scratch
COPY --from=build /runtime/ /
ENV NODE_ENV=production PATH=/usr/local/bin NODE_COMPILE_CACHE=/app/.compile-cache
WORKDIR /app
# The journal lives on a volume (PVC or hostPath); everything else is
# read-only, so the pod can run with readOnlyRootFilesystem.
VOLUME ["/var/lib/fleetlet"]
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM itself (the agent stops gracefully).
# The agent's Deployment and DaemonSet replace this with the agent's own node
# flags (their `command`); the hub's manifests keep it.
# dist/image.mjs runs the bundle of the command named first: `agent` (the
# default) dist/agent.mjs, `hub` dist/hub.mjs, any other (status, rollout,
# keygen, sign) the whole CLI. Add NODE_OPTIONS=--enable-source-maps for stack
# traces in TypeScript terms (it costs ~90 MiB resident while on, so it is off
# by default).
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/image.mjs"]
CMD ["agent"]
