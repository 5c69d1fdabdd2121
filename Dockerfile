# syntax=docker/dockerfile:1
# progress-advantage-server. CPU (default):   docker build -t progress-advantage-server:0.1.0 .
#                           CUDA 12:          docker build --build-arg VARIANT=cuda -t progress-advantage-server:0.1.0-cuda .
# Run (embedded default pair, no mount):      docker run --rm -p 8080:8080 progress-advantage-server:0.1.0
# Run your own pair, mounted at /models:      docker run --rm -p 8080:8080 -v "$PWD/models:/models:ro" \
#     -e PA_POLICY=/models/policy -e PA_REFERENCE=/models/reference progress-advantage-server:0.1.0
# Several scorers: -v "$PWD/models:/models:ro" -e PA_CONFIG=/models/config.yaml (paths in it relative to the file).
# CUDA image: docker run --gpus all ... progress-advantage-server:0.1.0-cuda serve --device cuda
# The build stage runs the same install and build commands as .ci/run (test/deploy/dockerfile.test.ts checks it).
ARG VARIANT=cpu
ARG NODE_IMAGE=node:26-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

FROM ${NODE_IMAGE} AS build
ARG VARIANT
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
# npm ci builds dist/ (the package's prepare script) and, by package.json's allowScripts, runs no
# onnxruntime-node install script, so nothing is downloaded. The variable does the same for an npm
# older than allowScripts. The CUDA variant then fetches the CUDA 12 execution provider explicitly.
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --no-audit --no-fund
RUN if [ "$VARIANT" = "cuda" ]; then ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js; fi
RUN npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime-cpu

FROM ${CUDA_IMAGE} AS runtime-cuda
COPY --from=build /usr/local/bin/node /usr/local/bin/node
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --create-home node

FROM runtime-${VARIANT} AS runtime
ENV NODE_ENV=production \
    PA_HOST=0.0.0.0 \
    PA_PORT=8080
WORKDIR /app
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
# The viewer's page and CSS are read from src/ui (its modules are compiled into dist/src/ui).
COPY --from=build --chown=node:node /app/src/ui ./src/ui
COPY --chown=node:node package.json openapi.yaml ./
# The embedded default pair: served with no mount. Mount your own at /models and pass
# --policy /models/<policy> --reference /models/<reference> (or PA_CONFIG=/models/config.yaml).
COPY --chown=node:node models ./models
# The mount point for your own models (empty in the image; PA_POLICY / PA_REFERENCE / PA_CONFIG point into it).
RUN mkdir -p /models && chown node:node /models
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PA_PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve"]
