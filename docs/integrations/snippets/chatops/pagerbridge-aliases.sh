# pagerbridge from an interactive shell: source this file from ~/.bashrc or ~/.zshrc.
#
# The CLI talks to PagerDuty directly (token and From from the environment or
# /etc/pagerbridge/pagerbridge.toml); the pb-* functions call the daemon's API instead, for
# hosts that have the daemon's URL and an API token but no PagerDuty token.
export PAGERBRIDGE_URL="${PAGERBRIDGE_URL:-http://pagerbridge.example.com:8080}"
# PAGERBRIDGE_API_TOKEN: an [[api.tokens]] token (admin scope to acknowledge and resolve).
# PAGERDUTY_FROM: your PagerDuty login; acknowledgements and resolutions are made as you.

alias pd='pagerbridge incident'
alias pd-open='pagerbridge incident list --status open'

# The daemon's API: pb-open, pb-ack ID..., pb-resolve ID..., pb-show ID.
pb-api() {
    curl -sS --fail-with-body \
        -H "Authorization: Bearer ${PAGERBRIDGE_API_TOKEN:?set PAGERBRIDGE_API_TOKEN}" \
        -H 'Content-Type: application/json' "$@"
}
pb-open() { pb-api "$PAGERBRIDGE_URL/api/v1/incidents?status=open"; }
pb-show() { pb-api "$PAGERBRIDGE_URL/api/v1/incidents/$1"; }
# Incident ids are letters and digits, e-mail addresses need no escaping in JSON: the body can
# be written with printf.
pb-status() {
    local action=$1 ids
    shift
    ids=$(printf '"%s",' "$@")
    pb-api -X POST "$PAGERBRIDGE_URL/api/v1/incidents/$action" \
        --data "{\"ids\": [${ids%,}], \"from\": \"${PAGERDUTY_FROM:?set PAGERDUTY_FROM}\"}"
}
pb-ack() { pb-status acknowledge "$@"; }
pb-resolve() { pb-status resolve "$@"; }
