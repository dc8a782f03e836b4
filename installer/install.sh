#!/usr/bin/env sh
# portrait-style for artists: one command installs the daemon, its model files and
# the GIMP 3 / Krita plug-ins for this user. A thin shell over install.py (same
# options: --dry-run, --uninstall, --service, --torch SPEC, --hosts gimp krita).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for python in python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$python" >/dev/null 2>&1 &&
        "$python" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        exec "$python" "$here/install.py" "$@"
    fi
done
echo "portrait-style install: needs Python 3.10 or newer with venv (Debian/Ubuntu:" \
     "sudo apt install python3 python3-venv)" >&2
exit 1
