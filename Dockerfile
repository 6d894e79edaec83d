# image-hub in a container: `docker build -t image-hub .` then
#   docker run -p 8080:8080 -v image-hub-data:/data -e OPENAI_API_KEY=sk-… image-hub
# The first start prints an admin key once (docker logs); set ADMIN_KEY to use your own.

# Stage 1: the production dependencies only (no type checker, linter, benchmark or test clients),
# and the web console, which npm ci builds (the prepare script: console/ → console/dist).
FROM node:24-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY console ./console
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# Stage 2: the hub, run as the unprivileged `node` user, its data on a volume.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY --from=dependencies /app/console/dist ./console/dist
COPY package.json ./
COPY src ./src
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# /healthz answers once the hub serves; the check reads PORT as the hub does.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT ?? 8080}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# A young generation of at most 8 MB a half: some 30 MB less at rest and 60 MB less at peak
# under load, for a few percent of throughput on multi-megabyte replies (BENCHMARKS.md).
CMD ["node", "--max-semi-space-size=8", "src/main.ts"]
