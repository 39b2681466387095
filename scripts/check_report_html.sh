#!/usr/bin/env bash
# Render a report's HTML page in headless Chromium and save a PNG of its top WIDTHxHEIGHT pixels (the default
# height holds the whole default report), to look at what a browser shows.
#
#   bash scripts/check_report_html.sh runs/default/report/report.html [OUT.png] [WIDTHxHEIGHT (default 1400x12000)]
#
# Needs Debian's chromium (apt-get install -y chromium). The page must render offline: Chromium runs with the
# network off (--proxy-server to a closed port), so a resource fetched from the network would show up missing.
# Prints the PNG's path; exit 1 if chromium is missing or wrote no PNG.
set -euo pipefail
page="${1:?usage: $0 REPORT.html [OUT.png] [WIDTHxHEIGHT]}"
out="${2:-${page%.html}.png}"
size="${3:-1400x12000}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [[ -z "$browser" ]]; then
  echo "no chromium on PATH: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
[[ -f "$page" ]] || { echo "no file $page" >&2; exit 1; }
abs="$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
rm -f "$out"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --proxy-server=127.0.0.1:9 \
  --window-size="${size/x/,}" --screenshot="$out" "file://$abs" >/dev/null 2>&1 || true
[[ -s "$out" ]] || { echo "chromium wrote no screenshot to $out" >&2; exit 1; }
echo "$out"
