#!/usr/bin/env bash
# Usage: ansible-core-venv.sh VENV PYTHON ANSIBLE_CORE_VERSION
# Makes VENV, a virtualenv of PYTHON (e.g. python3.12) with that ansible-core and what the unit and integration
# tests import, for `make ansible-oldest` and `make ansible-newest`. PYTHON is looked up on PATH, then among
# pyenv's versions. A venv already made for the same requirements is kept.
set -euo pipefail

venv=$1 python=$2 core=$3
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

find_python() {
    local found
    # A pyenv shim is on PATH even when its version is not selected: each candidate must run.
    for found in "$(command -v "$python")" "${PYENV_ROOT:-$HOME/.pyenv}/versions/${python#python}"*/bin/"$python"; do
        if [[ -x $found ]] && "$found" -c '' 2>/dev/null; then
            echo "$found"
            return
        fi
    done
    echo "$python not found: ansible-core $core needs it on the controller; install it (or pyenv install" \
         "${python#python}) and run make again" >&2
    exit 1
}

# ansible-core, the unit tests' imports and the test runner pinned as in requirements-dev.txt.
requirements=$(printf 'ansible-core==%s\n' "$core"; grep -v '^#' tests/unit/requirements.txt;
               grep -E '^(pytest|pytest-xdist|PyYAML)==' requirements-dev.txt)
stamp=$venv/.lifeboat-requirements
if [[ -f $stamp && $(cat "$stamp") == "$requirements" ]]; then
    exit 0
fi
rm -rf "$venv"
"$(find_python)" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r <(echo "$requirements")
echo "$requirements" > "$stamp"
