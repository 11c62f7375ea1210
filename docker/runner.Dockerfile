# The rbtk-runner image for hosted pools with the docker provider
# (rbtk pool create NAME --type hosted --provider docker --image rbtk/runner:VERSION).
#
#   npm ci && npm run build                    # the built agent (packages/*/dist, the agent's bundle)
#   docker build -f docker/runner.Dockerfile -t rbtk/runner:0.1.0 .
#
# The coordinator creates each member container with its runner.yaml (0600,
# a pre-registered runner's token) bind-mounted at /member and passes
# `run --config /member/runner.yaml` as the command; members use the host
# network. Add what your jobs need (git, a compiler, docker CLI for the docker
# executor) in an image FROM this one.
FROM node:20-slim

WORKDIR /opt/rbtk
# Workspace manifests first: the dependency layer is rebuilt only when they change.
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/agent/package.json packages/agent/
COPY packages/coordinator/package.json packages/coordinator/
RUN npm ci --omit=dev --workspace @rbtk/agent --include-workspace-root=false --ignore-scripts \
  && npm cache clean --force

COPY packages/protocol/dist packages/protocol/dist
COPY packages/agent/dist packages/agent/dist
COPY packages/agent/bin packages/agent/bin

ENV HOME=/tmp NODE_ENV=production
# PID 1 is node itself: rbtk-runner handles SIGTERM (drain, then exit) and SIGCONT (stopped mode:
# reconnect at once after docker unpause).
ENTRYPOINT ["node", "/opt/rbtk/packages/agent/bin/rbtk-runner.js"]
CMD ["run", "--config", "/member/runner.yaml"]
