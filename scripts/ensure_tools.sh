#!/usr/bin/env bash
# Gets what the product and its tests need on a fresh Debian 12 machine with Node 20, as root:
# Debian packages (nats-server, openssl, chromium, the Fashion-MNIST data set) and Deno from npm.
# Safe to run again: it installs only what is missing. Prints the deno binary's path last.
set -euo pipefail
DENO_VERSION=2.9.6
root=$(cd "$(dirname "$0")/.." && pwd)

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
# The secured-NATS tests make throw-away TLS certificates with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Debian's Chromium: the dashboard test drives it headless (puppeteer-core downloads no browser).
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${WITH_DATASETS:-1}" = 1 ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  missing+=(dataset-fashion-mnist)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi

if command -v deno >/dev/null 2>&1 && deno --version | grep -q "deno ${DENO_VERSION} "; then
  command -v deno
  exit 0
fi
tools="$root/.tools"
if [ ! -x "$tools/node_modules/.bin/deno" ]; then
  echo "installing deno ${DENO_VERSION} from npm into .tools/" >&2
  npm install --prefix "$tools" --no-save --no-audit --no-fund "deno@${DENO_VERSION}" >&2
fi
echo "$tools/node_modules/.bin/deno"
