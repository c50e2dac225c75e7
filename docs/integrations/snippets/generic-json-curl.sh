# What the monitor must do: POST its JSON to the route. To try a mapping by hand:
curl -sS -X POST http://pagerbridge.example.com:8080/ingest/uptime \
  -H "Authorization: Bearer $UPTIME_WEBHOOK_TOKEN" \
  -H 'Content-Type: application/json' \
  --data-binary @uptime-down.json
