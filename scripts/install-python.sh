#!/usr/bin/env bash
# Makes the Python module of a build importable by Debian's python3 from any directory: writes
# longctx.pth (one line: the absolute path of BUILD/python) into that interpreter's site
# directory (/usr/local/lib/python3.X/dist-packages). Usage: install-python.sh [BUILD [PYTHON]]
#   PYTHON: another interpreter, e.g. a virtual environment's bin/python (then its site-packages
#   gets the .pth; the venv must be on the same Python version as the build).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
py="${2:-/usr/bin/python3}"
pkg="$(cd "$build/python" && pwd)"
ls "$pkg"/longctx/_longctx*.so >/dev/null 2>&1 ||
  { echo "install-python: no module in $pkg; build it: cmake --build $build --target longctx_python" >&2; exit 1; }
"$py" -c "import numpy" 2>/dev/null ||
  { echo "install-python: $py cannot import numpy; install python3-numpy, and make a virtual" \
         "environment with: /usr/bin/python3 -m venv --system-site-packages DIR" >&2; exit 1; }
site="$("$py" - <<'PY'
import site, sys, sysconfig
if sys.prefix != sys.base_prefix:          # a virtual environment: its own site-packages
    print(sysconfig.get_paths()["purelib"])
else:
    dirs = site.getsitepackages()
    local = [d for d in dirs if d.startswith("/usr/local/")]
    print((local or dirs)[0])
PY
)"
SUDO=""
if ! mkdir -p "$site" 2>/dev/null || ! [[ -w "$site" ]]; then SUDO="sudo"; $SUDO mkdir -p "$site"; fi
echo "$pkg" | $SUDO tee "$site/longctx.pth" >/dev/null
(cd / && "$py" -c "import longctx, sys; print('longctx importable by', sys.executable, 'from', longctx.__file__)")
