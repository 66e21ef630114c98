#!/usr/bin/env bash
# Start of every previz container: fetch weights if asked to, then run the command.
# (KubeRay replaces the entrypoint with its own `ray start`; there, mount the weights volume or
# run previz-sync-weights in an init container.)
set -euo pipefail
if [[ -n "${PREVIZ_WEIGHTS_S3:-}" ]]; then
  previz-sync-weights "${PREVIZ_WEIGHTS_S3}" "${PREVIZ_WEIGHTS_DIR:-/mnt/models}"
fi
exec "$@"
