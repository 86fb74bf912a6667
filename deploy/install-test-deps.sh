#!/usr/bin/env bash
# Installs what the ops tests need on a fresh Debian 12 machine (run as root, e.g. from
# .ci/run before the tests):
#   rsyslog               real rsyslogd for monitor/tests/output_syslog.rs
#   systemd               systemd-analyze for deploy/verify.sh
#   kubernetes-validate   (PyPI) Kubernetes schema validation for deploy/verify.sh
set -euo pipefail

need_apt=()
command -v rsyslogd >/dev/null 2>&1 || need_apt+=(rsyslog)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
    # A Debian-managed Python refuses plain pip installs (PEP 668): retry past that.
    python3 -m pip install --quiet kubernetes-validate \
        || python3 -m pip install --quiet --break-system-packages kubernetes-validate
fi
echo "ops test dependencies present: rsyslogd, systemd-analyze, kubernetes-validate"
