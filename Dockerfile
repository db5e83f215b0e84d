# Multi-stage: the build stage compiles with dev dependencies; the runtime image holds the
# compiled service and production dependencies only, runs as the unprivileged `node` user, and
# carries no secret (keys, pepper and DATABASE_URL come from the environment at run time).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ormconfig.ts ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    PAI_HOST=0.0.0.0 \
    PAI_PORT=8080 \
    PAI_DATA_DIR=/var/lib/pai
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /var/lib/pai && chown node:node /var/lib/pai
USER node
EXPOSE 8080
VOLUME ["/var/lib/pai"]
# A signed system.ping with a verified reply, not merely an open port.
HEALTHCHECK --interval=15s --timeout=6s --start-period=20s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
