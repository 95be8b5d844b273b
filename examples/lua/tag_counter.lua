-- tag_counter.lua: how many tasks each user created with each tag, kept in a table
-- (exactly once per event) and counted on /metrics (taskora_lua_tag_tasks_total{tag=...}).

local tasks_per_tag = taskora.metrics.counter("taskora_lua_tag_tasks_total",
                                              "Tasks created, by tag", {"tag"})

function migrations()
  return {
    [[CREATE TABLE tag_counts (
        user_id text   NOT NULL,
        tag     text   NOT NULL,
        count   bigint NOT NULL,
        PRIMARY KEY (user_id, tag))]],
  }
end

function handle(event)
  if event.type ~= "task.created" then
    return "ok"
  end
  for _, tag in ipairs(event.payload.tags or {}) do
    taskora.db.exec([[
      INSERT INTO tag_counts (user_id, tag, count) VALUES ($1, $2, 1)
      ON CONFLICT (user_id, tag) DO UPDATE SET count = tag_counts.count + 1]],
      event.user_id, tag)
    -- metrics are not part of the transaction: a retried event may count twice here
    tasks_per_tag:inc{tag = tag}
  end
  return "ok"
end
