#!/usr/bin/env bash
# Debian packages the test suite and the grader need beyond Python: bubblewrap (the grading
# sandbox) and chromium (the headless browser Playwright drives in tests/test_hub_browser.py:
# Debian's build, never one downloaded by `playwright install`). SLURM and PostgreSQL are
# installed by their own scripts when a test first needs them.
# Run as root on a fresh machine (CI); elsewhere it only reports what is missing.
set -euo pipefail
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v prlimit >/dev/null && command -v setpriv >/dev/null || missing+=(util-linux)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${missing[*]}: ask an admin to run 'apt-get install ${missing[*]}'" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
