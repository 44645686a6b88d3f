#!/usr/bin/env bash
# Post an alert to relaybus as an integration event (or resolve one).
#
#   ops-alert.sh [-k KEY] [-t TARGET] [-c CHANNEL] [-p PRIORITY] [-u URL] [-r] TITLE [BODY]
#
#   -k KEY       dedupe key (default: the title): a repeat while its task is open only
#                raises the task's occurrence count
#   -t TARGET    target expression, e.g. cap:ops (default: the integration's first)
#   -c CHANNEL   channel (default: the integration's first, if any)
#   -p PRIORITY  low, normal, high or urgent (default: normal)
#   -u URL       a link to what the alert is about (a dashboard, a runbook)
#   -r           resolve: close the open task of KEY instead of raising one
#
# Environment: RELAYBUS_URL (default http://127.0.0.1:4850) and
# RELAYBUS_INTEGRATION_TOKEN (the integration's rbi_... token). Needs curl and jq.
# Prints what relaybus did ("created task 12", "repeated task 12 (3 occurrences)",
# "resolved task 12"); exits 1 with relaybus's reason when it refused.
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

key="" target="" channel="" priority="normal" url="" status="open"
while getopts "k:t:c:p:u:rh" opt; do
  case "$opt" in
    k) key=$OPTARG ;;
    t) target=$OPTARG ;;
    c) channel=$OPTARG ;;
    p) priority=$OPTARG ;;
    u) url=$OPTARG ;;
    r) status="resolved" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] && [ $# -le 2 ] || usage
title=$1
body=${2:-}
relay=${RELAYBUS_URL:-http://127.0.0.1:4850}
token=${RELAYBUS_INTEGRATION_TOKEN:?set RELAYBUS_INTEGRATION_TOKEN to the integration token (rbi_...)}

# jq builds the JSON, so quotes and newlines in the title or body are safe; empty
# options are left out, and relaybus fills in the integration's defaults.
event=$(jq -n \
  --arg title "$title" --arg body "$body" --arg key "${key:-$title}" \
  --arg target "$target" --arg channel "$channel" --arg priority "$priority" \
  --arg url "$url" --arg status "$status" --arg host "$(hostname)" '
  {source: "ops-alert", title: $title, body: $body, dedupe_key: $key,
   target: $target, channel: $channel, priority: $priority, external_url: $url,
   status: $status, metadata: {host: $host}}
  | with_entries(select(.value != ""))')

# --retry: a timeout, 429 or 5xx is tried again (after Retry-After when relaybus sends
# one); a repeat is harmless, since the dedupe key finds the same task.
if ! answer=$(curl -sS --fail-with-body --max-time 10 --retry 3 \
  -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
  --data-binary "$event" "$relay/v1/integrations/events"); then
  if [ -z "$answer" ]; then
    echo "ops-alert: no answer from relaybus at $relay" >&2
    exit 1
  fi
  reason=$(jq -r '.detail // empty' <<<"$answer" 2>/dev/null || true)
  echo "ops-alert: relaybus refused the event: ${reason:-$answer}" >&2
  exit 1
fi
jq -r '"\(.outcome) task \(.task.id // "-")" +
  (if .outcome == "repeated" then " (\(.task.occurrence_count) occurrences)" else "" end)' \
  <<<"$answer"
