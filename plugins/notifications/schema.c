/*
 * The tables the notifications plugin owns, as migrations. Append steps; never edit a shipped
 * one. No foreign key to another plugin's table: a worker's database may be migrated before the
 * API's.
 */
#include <stddef.h>

#include "notif.h"

const char *const notif_migrations[] = {
    /* 1: in-app notifications and the webhook deliveries waiting to be sent */
    "CREATE TABLE IF NOT EXISTS notifications ("
    " id BIGSERIAL PRIMARY KEY,"
    " user_id VARCHAR NOT NULL,"
    " task_id INTEGER,"
    " type VARCHAR(32) NOT NULL DEFAULT 'reminder',"
    " title VARCHAR NOT NULL,"
    " message TEXT NOT NULL,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " read_at TIMESTAMP WITHOUT TIME ZONE,"
    " event_id TEXT);"
    "CREATE INDEX IF NOT EXISTS ix_notifications_user_created"
    " ON notifications (user_id, created_at DESC, id DESC);"
    "CREATE INDEX IF NOT EXISTS ix_notifications_user_unread"
    " ON notifications (user_id, created_at DESC, id DESC) WHERE read_at IS NULL;"
    "CREATE TABLE IF NOT EXISTS notification_webhooks ("
    " id BIGSERIAL PRIMARY KEY,"
    " instance TEXT NOT NULL,"
    " event_id TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " created_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
    " lease_until TIMESTAMPTZ,"
    " delivered_at TIMESTAMPTZ,"
    " failed_at TIMESTAMPTZ,"
    " last_status INTEGER,"
    " last_error TEXT);"
    "CREATE INDEX IF NOT EXISTS ix_notification_webhooks_pending"
    " ON notification_webhooks (instance, next_attempt_at, id)"
    " WHERE delivered_at IS NULL AND failed_at IS NULL",

    /* 2: the reminder schedule, this plugin's own projection of the task and user events it
     * consumes (schedule.c): one row per task with what a reminder needs. The accounts deleted
     * (their tasks' events may still arrive: user-events and task-events are not ordered with
     * each other). Where the tasks table exists (a database older than this schedule, or one the
     * API plugin migrated first), its rows are copied once, under a lock that holds writers off
     * until this step commits: the one declared read of another plugin's table. The copy's
     * bounds, the highest task id and the time it was taken, tell the consumer which events it
     * already holds. */
    "CREATE TABLE IF NOT EXISTS notification_reminders ("
    " task_id INTEGER PRIMARY KEY,"
    " user_id VARCHAR NOT NULL,"
    " title VARCHAR NOT NULL DEFAULT '',"
    " due_date TIMESTAMP WITHOUT TIME ZONE,"
    " reminder_at TIMESTAMP WITHOUT TIME ZONE,"
    " completed BOOLEAN NOT NULL DEFAULT false,"
    " sent BOOLEAN NOT NULL DEFAULT false,"
    " backfilled BOOLEAN NOT NULL DEFAULT false,"
    " updated_at TIMESTAMPTZ NOT NULL DEFAULT now());"
    "CREATE INDEX IF NOT EXISTS ix_notification_reminders_pending"
    " ON notification_reminders (reminder_at, task_id)"
    " WHERE reminder_at IS NOT NULL AND NOT sent AND NOT completed;"
    "CREATE INDEX IF NOT EXISTS ix_notification_reminders_user"
    " ON notification_reminders (user_id);"
    "CREATE TABLE IF NOT EXISTS notification_deleted_users ("
    " user_id VARCHAR PRIMARY KEY,"
    " deleted_at TIMESTAMPTZ NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS notification_backfill ("
    " one_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (one_row),"
    " last_task_id BIGINT NOT NULL,"
    " done_at TIMESTAMPTZ NOT NULL);"
    "CREATE INDEX IF NOT EXISTS ix_notifications_task_reminder"
    " ON notifications (task_id, created_at) WHERE type = 'reminder';"
    "DO $$ BEGIN"
    " IF to_regclass('tasks') IS NOT NULL THEN"
    "  LOCK TABLE tasks IN SHARE MODE;"
    "  INSERT INTO notification_reminders (task_id, user_id, title, due_date, reminder_at,"
    "   completed, sent, backfilled)"
    "   SELECT id, user_id, title, due_date, reminder_at, completed, reminder_sent, true FROM tasks"
    "   ON CONFLICT (task_id) DO NOTHING;"
    "  INSERT INTO notification_backfill (last_task_id, done_at)"
    "   SELECT greatest(coalesce(max(id), 0), coalesce(pg_sequence_last_value("
    "    pg_get_serial_sequence('tasks', 'id')::regclass), 0)), clock_timestamp() FROM tasks"
    "   ON CONFLICT (one_row) DO NOTHING;"
    " END IF; END $$",
    NULL,
};
