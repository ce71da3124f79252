#!/usr/bin/env bash
# Lint the TypeScript and rebuild the front end from src/ in a fresh copy of lab/ (as a
# clean clone would), then fail when the committed build differs from it.
# Needs Node.js and jlpm (JupyterLab's); CI runs it (.ci/run).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The files git tracks or would track (no node_modules, lib/ or other build output);
# files deleted but not yet committed are skipped.
(cd "$here" && git ls-files -z --cached --others --exclude-standard . \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$work"
cd "$work"
# One download cache for every run on this machine (node_modules itself stays in $work).
export YARN_ENABLE_GLOBAL_CACHE=1
jlpm install --immutable > install.log 2>&1 || { cat install.log; exit 1; }
jlpm lint
jlpm build:prod > build.log 2>&1 || { cat build.log; exit 1; }
if ! diff -r "$here/mistral_magic_lab/labextension" mistral_magic_lab/labextension; then
  echo "lab/mistral_magic_lab/labextension is stale: run 'jlpm build:prod' in lab/ and commit it" >&2
  exit 1
fi
echo "lab/: lint clean; the committed front end is what src/ builds to"
