#!/usr/bin/env bash
# Checks the deployment files:
#   1. deploy/monitor.service with `systemd-analyze verify` (Debian package: systemd); any
#      message it prints counts as a failure, because it reports bad values as warnings and
#      still exits 0.
#   2. deploy/k8s/*.yaml against the Kubernetes schemas, strictly (unknown fields refused),
#      with `kubernetes-validate` (PyPI package: kubernetes-validate).
# The unit names /usr/local/bin/monitor; the check points it at $MONITOR_BIN, or a built
# target/{release,debug}/monitor, or else a stand-in executable (the unit's syntax and
# settings are what is checked).
# A missing tool fails the run under CI=true and is skipped (saying so) elsewhere.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
passed=0
failed=0
skipped=0

missing() { # tool, package
    if [ "${CI:-}" = "true" ]; then
        echo "FAIL: $1 is missing (install $2); CI=true, so this is a failure" >&2
        failed=$((failed + 1))
    else
        echo "SKIP: $1 is missing (install $2)" >&2
        skipped=$((skipped + 1))
    fi
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. systemd unit
if command -v systemd-analyze >/dev/null 2>&1; then
    bin="${MONITOR_BIN:-}"
    if [ -z "$bin" ]; then
        for cand in "${CARGO_TARGET_DIR:-$root/target}/release/monitor" \
                    "${CARGO_TARGET_DIR:-$root/target}/debug/monitor"; do
            if [ -x "$cand" ]; then bin="$cand"; break; fi
        done
    fi
    if [ -z "$bin" ]; then
        bin="$work/monitor"
        printf '#!/bin/sh\nexit 0\n' > "$bin"
        chmod +x "$bin"
    fi
    sed "s#/usr/local/bin/monitor#$bin#g" "$here/monitor.service" > "$work/monitor.service"
    out="$(systemd-analyze verify "$work/monitor.service" 2>&1)"
    rc=$?
    if [ $rc -eq 0 ] && [ -z "$out" ]; then
        echo "ok: systemd-analyze verify deploy/monitor.service"
        passed=$((passed + 1))
    else
        echo "FAIL: systemd-analyze verify deploy/monitor.service (exit $rc):" >&2
        echo "$out" >&2
        failed=$((failed + 1))
    fi
else
    missing systemd-analyze "the Debian package systemd"
fi

# 2. Kubernetes manifests
if command -v kubernetes-validate >/dev/null 2>&1; then
    for f in "$here"/k8s/*.yaml; do
        if out="$(kubernetes-validate --strict --quiet "$f" 2>&1)" && ! grep -qiE 'warn|fail|error' <<<"$out"; then
            echo "ok: kubernetes-validate --strict deploy/k8s/$(basename "$f")"
            passed=$((passed + 1))
        else
            echo "FAIL: kubernetes-validate --strict deploy/k8s/$(basename "$f"):" >&2
            echo "$out" >&2
            failed=$((failed + 1))
        fi
    done
else
    missing kubernetes-validate "the PyPI package kubernetes-validate: pip install kubernetes-validate"
fi

echo "deploy: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
