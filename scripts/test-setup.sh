#!/usr/bin/env bash
# Installs what the tests need beyond cargo: schemathesis, pinned, for the property-based run
# over openapi.yaml (tests/openapi_fuzz.rs). It goes into a virtual environment of its own
# under ~/.cache/railgate-test-tools, where the test looks for it. Safe to run again.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
TOOLS="${RAILGATE_TEST_TOOLS:-$HOME/.cache/railgate-test-tools}"

if [ -x "$TOOLS/bin/schemathesis" ] &&
  "$TOOLS/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  echo "schemathesis $SCHEMATHESIS_VERSION is installed in $TOOLS"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip
  fi
fi

python3 -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
"$TOOLS/bin/schemathesis" --version
