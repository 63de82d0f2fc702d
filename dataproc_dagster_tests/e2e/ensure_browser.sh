#!/usr/bin/env bash
# Installs Debian's headless-capable `chromium` for the UI screenshot tests when it is missing.
# CI runs this as root (./run.sh test calls it); elsewhere it tries sudo without a password and
# otherwise says what to run. The tests skip with that reason when no browser is found.
set -euo pipefail

for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null 2>&1; then
    echo "ensure_browser: using $(command -v "$candidate")"
    exit 0
  fi
done

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "ensure_browser: chromium is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi

echo "ensure_browser: installing chromium with apt-get (once)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1
echo "ensure_browser: installed $(chromium --version 2>/dev/null || echo chromium)"
