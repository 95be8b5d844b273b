-- audit.lua: an audit log of task events, one row per event.
--
-- The first taskora.db call of an event records (consumer group, event id) in the
-- event's transaction, and the transaction commits only when handle() returns.
-- An event delivered twice (after a crash or a rebalance) is recognised there and
-- acknowledged without running the INSERT again: each event is in the log once,
-- with no unique constraint of our own to lean on.

function migrations()
  return {
    [[CREATE TABLE audit_log (
        id       bigserial PRIMARY KEY,
        event_id text NOT NULL,
        type     text NOT NULL,
        user_id  text,
        subject  text,
        at       timestamptz NOT NULL,
        payload  jsonb NOT NULL)]],
    "CREATE INDEX audit_log_user_at ON audit_log (user_id, at)",
  }
end

function handle(event)
  taskora.db.exec(
    "INSERT INTO audit_log (event_id, type, user_id, subject, at, payload)"
      .. " VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()), $6)",
    event.id, event.type, event.user_id, event.subject, event.time, event.payload)
  return "ok"
end
