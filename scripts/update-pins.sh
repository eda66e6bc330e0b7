#!/usr/bin/env bash
# `make pins`: moves pins/python.txt and pins/npm-tools.txt to the newest releases that
# pyproject.toml's ranges allow (a fresh virtualenv, installed without the pins, frozen) and
# to each npm client's newest version. Then run `make test`, and commit the pins with the
# fixes they need: a release upstream enters the project in a change of its own.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

python3 -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --upgrade pip
"$scratch/venv/bin/python" -m pip install -q -e "$repo[test]"
python_pins="$repo/pins/python.txt"
{
  grep '^#' "$python_pins"
  "$scratch/venv/bin/python" -m pip freeze --all --exclude-editable
} > "$scratch/python.txt"
mv "$scratch/python.txt" "$python_pins"

# The versions npm installs here, not its "latest" tags: npm passes over a release whose
# engines this node does not satisfy.
npm_pins="$repo/pins/npm-tools.txt"
names=()
while read -r pin; do names+=("${pin%@*}"); done < <(grep -v -E '^\s*(#|$)' "$npm_pins")
npm install --prefix "$scratch/npm" --no-audit --no-fund --loglevel=error "${names[@]}" >/dev/null
{
  grep '^#' "$npm_pins"
  for name in "${names[@]}"; do
    echo "$name@$(node -p 'require(process.argv[1]).version' \
      "$scratch/npm/node_modules/$name/package.json")"
  done
} > "$scratch/npm-tools.txt"
mv "$scratch/npm-tools.txt" "$npm_pins"

git -C "$repo" diff --stat -- pins/
