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
    NULL,
};
