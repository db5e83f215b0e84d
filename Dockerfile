# PAI's container image.
# - Multi-stage: the build stage compiles with the development dependencies; the runtime stage
#   holds the compiled service and the production dependencies only.
# - Runs as the unprivileged `node` user (uid 1000).
# - No secret in any layer: the MAC keys, the pepper and DATABASE_URL come at run time, from the
#   environment or from files (PAI_MAC_KEYS_FILE, PAI_PASSWORD_PEPPER_FILE, PAI_LEDGER_KEY_FILE, DATABASE_URL_FILE).
# - Node is PID 1: Nest's shutdown hooks handle SIGTERM (close the listeners, finish, exit 0);
#   the service starts no child processes, so there are no zombies for an init to reap.

FROM node:24-bookworm-slim AS build
WORKDIR /app
# The npm workspace: the service and the client package (@pai/client) it takes the wire pieces
# from; npm ci builds the client package (its `prepare`), so its sources come first.
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY clients/node/package.json clients/node/tsconfig.build.json ./clients/node/
COPY clients/node/src ./clients/node/src
COPY clients/node/bin ./clients/node/bin
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY tsconfig.build.json nest-cli.json ormconfig.ts ./
COPY scripts/start.cjs ./scripts/
COPY src ./src
# Shipped modules without what running never reads: type declarations, source maps, TypeScript
# (typeorm's CLI pulls it in through ts-node, for .ts migrations; ours are compiled), the SQLite
# sources, and the native prebuilds of other platforms.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete \
 && arch=$(node -p process.arch) \
 && rm -rf node_modules/typescript node_modules/better-sqlite3/deps node_modules/better-sqlite3/src \
 && find node_modules/better-sqlite3/prebuilds -mindepth 1 -maxdepth 1 ! -name "linux-$arch.node" -exec rm -rf {} + \
 && find node_modules/bcrypt/prebuilds -mindepth 1 -maxdepth 1 ! -name "linux-$arch" -exec rm -rf {} +

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    PAI_HOST=0.0.0.0 \
    PAI_PORT=8080 \
    PAI_HTTP_HOST=0.0.0.0 \
    PAI_HTTP_PORT=9090 \
    PAI_LOG_FORMAT=json \
    PAI_DATA_DIR=/var/lib/pai
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
# node_modules/@pai/client links here; its bin is the `pai` command:
#   docker exec pai node clients/node/bin/pai.cjs ping
COPY --from=build /app/clients/node/package.json ./clients/node/
COPY --from=build /app/clients/node/bin ./clients/node/bin
COPY --from=build /app/clients/node/dist ./clients/node/dist
COPY --from=build /app/scripts/start.cjs ./scripts/
COPY --from=build /app/dist ./dist
# The data directory (the SQLite file, when no DATABASE_URL is given) is the service user's alone;
# a named volume mounted on it starts with this owner and mode.
RUN install -d -m 0700 -o node -g node /var/lib/pai
USER node
# 8080: the signed protocol (TCP). 9090: health and metrics (HTTP); publish it to the
# orchestrator and Prometheus only, it answers without authentication.
EXPOSE 8080 9090
VOLUME ["/var/lib/pai"]
# A signed system.ping whose signed reply is verified: proves the keys, the guard, the nonce
# record (so the database) and the reply signing, not merely an open port.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
STOPSIGNAL SIGTERM
# scripts/start.cjs checks the Node version, then loads dist/src/main.js in this same process.
CMD ["node", "scripts/start.cjs"]
