#!/usr/bin/env bash
# Installs the Debian packages whose servers the tests start privately: PostgreSQL (the state
# store's second backend; tests/test_operational_postgres.py runs its own cluster in a temp
# folder) and Redis.  Quiet and idempotent: does nothing when both are installed.  It never
# starts the system services: the tests depend on no system state.
#
# A failed install is an error under CI (CI=true), where a skipped backend would pass unseen;
# elsewhere it is a warning and the tests that need the server are skipped.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null \
    || need+=(postgresql)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
[ "${#need[@]}" -eq 0 ] && exit 0

fail() {
    echo "ci-services: $1; tests needing ${need[*]} will be skipped" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    exit 0
}

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        fail "not root (and no password-less sudo) to install ${need[*]}"
    fi
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive

# Package scripts must not start the system clusters/daemons (invoke-rc.d honours this file);
# a policy that is already in place (as in most containers) is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    trap 'rm -f "$log"; "${sudo[@]}" rm -f "$policy"' EXIT
fi

apt_install() {
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$log" 2>&1
}

echo "ci-services: installing ${need[*]}" >&2
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null || ! apt_install; then
    # No package lists yet, or stale ones: refresh once and try again.
    if ! { "${sudo[@]}" apt-get update -qq >>"$log" 2>&1 && apt_install; }; then
        tail -n 20 "$log" >&2
        fail "apt-get could not install ${need[*]}"
    fi
fi
