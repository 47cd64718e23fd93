#!/usr/bin/env bash
# Installs what the tests need beyond cargo: Debian's chromium and chromium-driver (the finance
# page and the operations console in a real browser, driven over WebDriver), libxml2-utils
# (xmllint: XSD validation of the bank files), and schemathesis, pinned, for the property-based
# run over openapi.yaml (tests/openapi_fuzz.rs), in a virtual environment of its own under
# ~/.cache/railgate-test-tools, where the test looks for it. Safe to run again.
set -euo pipefail

need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
command -v xmllint >/dev/null 2>&1 || need="$need libxml2-utils"
# promtool (from Debian's prometheus package): checks and unit-tests ops/prometheus/alerts.yml.
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
if [ -n "$need" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi

SCHEMATHESIS_VERSION=4.32.5
TOOLS="${RAILGATE_TEST_TOOLS:-$HOME/.cache/railgate-test-tools}"

if [ -x "$TOOLS/bin/schemathesis" ] &&
  "$TOOLS/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION" &&
  "$TOOLS/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] == (3, 11))'; then
  echo "schemathesis $SCHEMATHESIS_VERSION is installed in $TOOLS"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip
  fi
fi

# Python 3.11's parser trips over the depth hypothesis recurses to ("AST constructor recursion
# depth mismatch"); a newer Python is used where there is one.
PYTHON=python3
PYENV_PYTHONS=""
if command -v pyenv >/dev/null 2>&1; then
  PYENV_PYTHONS="$(ls -d "$(pyenv root)"/versions/3.1[23]*/bin/python3 2>/dev/null | sort -r | tr '\n' ' ')"
fi
for candidate in python3.13 python3.12 $PYENV_PYTHONS; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    PYTHON="$candidate"
    break
  fi
done
rm -rf "$TOOLS"
"$PYTHON" -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
"$TOOLS/bin/schemathesis" --version
