# Sourced by the scripts in this folder: make or reuse ./.venv with simfarm installed.
# Debian and Raspberry Pi OS refuse `pip install` outside a virtual environment (PEP 668).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SIMFARM_VENV:-$root/.venv}"
extra="${1:-}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "simfarm needs Python 3.11 or newer (found: $("$py" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    if ! "$py" -m venv "$venv"; then
        echo "could not create a virtual environment; on Debian/Raspberry Pi OS: sudo apt install python3-venv" >&2
        exit 1
    fi
fi
stamp="$venv/.simfarm-installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$root${extra:+[$extra]}"
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
