#!/usr/bin/env bash
# Make sure ngspice (binary and shared library) is installed, from Debian's packages.
# As root: installs them. Otherwise: uses sudo without a password if it can, else prints the
# exact command to run and fails.
set -euo pipefail
have_lib() { ldconfig -p 2>/dev/null | grep -q 'libngspice\.so\.0' || ls /usr/lib/*/libngspice.so.0 >/dev/null 2>&1; }
if command -v ngspice >/dev/null 2>&1 && have_lib; then
  exit 0
fi
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ngspice libngspice0"
if [ "$(id -u)" -eq 0 ]; then
  echo "mtjsim: ngspice is missing; running: $cmd"
  sh -c "$cmd"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "mtjsim: ngspice is missing; running: sudo sh -c '$cmd'"
  sudo sh -c "$cmd"
else
  echo "mtjsim: ngspice is missing and this user cannot install packages." >&2
  echo "Run this as root, then try again:" >&2
  echo "    sudo sh -c '$cmd'" >&2
  exit 1
fi
command -v ngspice >/dev/null 2>&1 || { echo "mtjsim: ngspice still not found after install" >&2; exit 1; }
