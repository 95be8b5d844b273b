-- webhook.lua: tells a web service about every task event that marks a task high
-- priority: task.created of a high-priority task, task.updated that set priority to
-- "high". Other events are acknowledged and ignored.
--
-- A call is at least once, not exactly once: a redelivered event calls again, so the
-- receiver should deduplicate on the X-Taskora-Event-Id header.

local url = taskora.settings.url
assert(type(url) == "string" and url:match("^https?://"),
       "settings.url: the webhook's http(s) URL is required")

local calls = taskora.metrics.counter("taskora_lua_webhook_calls_total",
                                      "Webhook calls answered, by HTTP status", {"status"})

function handle(event)
  local task = event.payload
  if task.priority ~= "high" then
    return "ok"
  end
  local res, err = taskora.http.request{
    method = "POST", url = url, timeout_ms = 3000,
    headers = {["Content-Type"] = "application/json", ["X-Taskora-Event-Id"] = event.id},
    body = taskora.json.encode{event_id = event.id, type = event.type,
                               user_id = event.user_id, time = event.time, task = task},
  }
  if not res then
    -- 5xx, 429, timeouts: already retried by the target's policy; now the consume
    -- section's retry policy, then the DLQ with this message in x-taskora-error
    error("webhook " .. url .. " failed: " .. err)
  end
  calls:inc{status = tostring(res.status)}
  if res.status >= 400 then
    taskora.log.warn("webhook refused the event", {status = res.status, body = res.body})
    return "fail" -- a 4xx will not get better by trying again: straight to the DLQ
  end
end
