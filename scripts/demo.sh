#!/usr/bin/env bash
# npm run demo: installs what is missing (as npm test does), then runs scripts/demo.ts, which
# brings the local stack up, shows a generation end to end, and brings down what it started.
# `npm run demo -- --help` for the flags.

# shellcheck source=lib/local-stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/local-stack.sh"

ensure_dependencies
exec "$KILN_ROOT/node_modules/.bin/tsx" "$KILN_ROOT/scripts/demo.ts" "$@"
