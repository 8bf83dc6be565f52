#!/usr/bin/env bash
# What `make test` needs from the machine beyond Python: Java 17+ (the local Kafka broker), Maven
# (fetches the Kafka jars once), rsyslogd with its GnuTLS driver (the syslog delivery tests) and
# Debian's Chromium (the report is rendered and printed by it, as a person would see it) and
# promtool (Debian's prometheus package: the alerting rules are checked and unit-tested by it) and
# npm (installs axe-core, which checks the console's pages for accessibility).
# Says in one line what to install, before half an hour of tests fails on it.
set -u
missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || [ -f infra/kafka/lib/.fetched ] || missing+=(maven)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 \
  || missing+=(rsyslog-gnutls)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v npm >/dev/null 2>&1 || [ -f tests/browser/node_modules/.installed ] || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "make test needs: ${missing[*]}. Install with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
