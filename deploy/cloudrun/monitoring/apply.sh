#!/usr/bin/env bash
# Create or update the Cloud Run deployment's log-based metrics and alert policies.
#
#   deploy/cloudrun/monitoring/apply.sh --project P --worker-service S --subscription SUB \
#       [--notification-channels projects/P/notificationChannels/ID[,...]] [--dry-run]
#
# Idempotent: an existing metric (by name) or policy (by display name) is updated.
# --dry-run prints the commands that would change something (reading what exists),
# and changes nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="" service="" subscription="" channels="" dry_run=0

usage() { sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) project="${2:?}"; shift 2 ;;
    --worker-service) service="${2:?}"; shift 2 ;;
    --subscription) subscription="${2:?}"; shift 2 ;;
    --notification-channels) channels="${2:?}"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    *) echo "apply.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ -n "$project" && -n "$service" && -n "$subscription" ]] || usage

work="$(mktemp -d)"
if [[ $dry_run -eq 1 ]]; then
  echo "# rendered files: $work"  # kept, so the printed commands can be run
else
  trap 'rm -rf "$work"' EXIT
fi

# The files name the project, worker service and subscription as ${PROJECT_ID},
# ${WORKER_SERVICE} and ${SUBSCRIPTION}.
render() {
  local out="$work/$(basename "$1")"
  sed -e "s|\${PROJECT_ID}|$project|g" -e "s|\${WORKER_SERVICE}|$service|g" \
      -e "s|\${SUBSCRIPTION}|$subscription|g" "$1" > "$out"
  echo "$out"
}

change() {
  if [[ $dry_run -eq 1 ]]; then
    printf '%q ' "$@"; echo
  else
    "$@"
  fi
}

for file in "$here"/log-metrics/*.json; do
  name="$(basename "$file" .json)"
  rendered="$(render "$file")"
  if gcloud logging metrics describe "$name" --project "$project" >/dev/null 2>&1; then
    change gcloud logging metrics update "$name" --project "$project" --config-from-file "$rendered"
  else
    change gcloud logging metrics create "$name" --project "$project" --config-from-file "$rendered"
  fi
done

for file in "$here"/alert-policies/*.json; do
  rendered="$(render "$file")"
  display="$(sed -n 's/^ *"displayName": "\(Consensus Engine: [^"]*\)".*/\1/p' "$rendered" | head -n 1)"
  existing="$(gcloud alpha monitoring policies list --project "$project" \
    --filter "displayName=\"$display\"" --format "value(name)" | head -n 1)"
  if [[ -n "$existing" ]]; then
    change gcloud alpha monitoring policies update "$existing" --project "$project" \
      --policy-from-file "$rendered" ${channels:+--set-notification-channels "$channels"}
  else
    change gcloud alpha monitoring policies create --project "$project" \
      --policy-from-file "$rendered" ${channels:+--notification-channels "$channels"}
  fi
done
