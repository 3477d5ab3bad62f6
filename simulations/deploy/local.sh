#!/usr/bin/env bash
# One machine, real processes: a SuperLink and N SuperNodes on loopback with TLS and SuperNode
# authentication, then `flwr run`, then every process stopped by its PID (docs/DEPLOY.md).
#
#   bash simulations/deploy/local.sh --nodes 3 num-rounds=3 'dataset="digits"' 'fedpara.mode="fedpara"'
#
# --no-auth lets any SuperNode join; --insecure turns TLS off (warned: clear text) and with it
# SuperNode authentication, which Flower allows only over TLS. Stop it with Ctrl-C or
# `kill <pid>`: either stops every process it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${FEDLITE_PYTHON:-$root/.venv/bin/python}
cd "$root"
exec "$py" -m simulations.deploy.cluster "$@"
