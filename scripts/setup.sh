#!/usr/bin/env bash
# Install milan-lab (editable) with its dependencies; --dev adds the test tools and the
# headless Chromium the browser test drives (Debian's package: browsers cannot be downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--dev" ]; then
  "$PY" -m pip install -q -e ".[dev]"
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "setup: could not install chromium; the browser test will fail"
  fi
else
  "$PY" -m pip install -q -e .
fi
"$PY" -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
