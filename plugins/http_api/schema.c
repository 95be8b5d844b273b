/* The domain tables the HTTP API plugin owns, as migrations.
 *
 * Step 1 creates the existing Taskora service's tables, with its names,
 * columns and types, only where they are absent: pointed at an existing
 * Taskora database it changes nothing. Later steps only add (indexes, new
 * tables); no constraint is added that existing rows could violate. (Unique
 * emails, which the existing service relied on, get an index only where no
 * unique index or constraint covers them yet; step 4 makes them unique
 * case-insensitively without refusing the case-duplicates a database may
 * already hold.) */
#include "schema.h"

#include <stddef.h>

const char *const http_api_migrations[] = {
    /* 1: the existing service's schema */
    "CREATE TABLE IF NOT EXISTS users ("
    " id SERIAL PRIMARY KEY,"
    " email VARCHAR NOT NULL,"
    " name VARCHAR NOT NULL,"
    " hashed_password VARCHAR NOT NULL,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'));"
    /* unique emails, unless the table already has a unique index or constraint on email */
    "DO $$ BEGIN"
    " IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a"
    "  ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
    "  WHERE i.indrelid = 'users'::regclass AND i.indisunique AND i.indnatts = 1"
    "  AND a.attname = 'email') THEN"
    "  CREATE UNIQUE INDEX ix_users_email ON users (email);"
    " END IF; END $$;"
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id SERIAL PRIMARY KEY,"
    " title VARCHAR(255) NOT NULL,"
    " description VARCHAR,"
    " completed BOOLEAN NOT NULL DEFAULT false,"
    " user_id VARCHAR NOT NULL,"
    " priority VARCHAR(10) NOT NULL DEFAULT 'medium',"
    " due_date TIMESTAMP WITHOUT TIME ZONE,"
    " reminder_at TIMESTAMP WITHOUT TIME ZONE,"
    " reminder_sent BOOLEAN NOT NULL DEFAULT false,"
    " is_recurring BOOLEAN NOT NULL DEFAULT false,"
    " recurrence_rule VARCHAR(20),"
    " recurrence_interval INTEGER,"
    " parent_task_id INTEGER REFERENCES tasks (id),"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'));"
    "CREATE TABLE IF NOT EXISTS tags ("
    " id SERIAL PRIMARY KEY,"
    " name VARCHAR(50) NOT NULL,"
    " color VARCHAR(7) NOT NULL DEFAULT '#6366F1',"
    " user_id VARCHAR(255) NOT NULL,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'));"
    "CREATE TABLE IF NOT EXISTS task_tags ("
    " task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,"
    " tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,"
    " PRIMARY KEY (task_id, tag_id));"
    "CREATE TABLE IF NOT EXISTS conversations ("
    " id SERIAL PRIMARY KEY,"
    " user_id VARCHAR NOT NULL,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),"
    " updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'));"
    "CREATE TABLE IF NOT EXISTS messages ("
    " id SERIAL PRIMARY KEY,"
    " conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,"
    " user_id VARCHAR NOT NULL,"
    " role VARCHAR NOT NULL CHECK (role IN ('user', 'assistant')),"
    " content TEXT NOT NULL,"
    " tool_calls TEXT,"
    " created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))",

    /* 2: indexes for the API's queries (every list is per user) */
    "CREATE INDEX IF NOT EXISTS ix_tasks_user_id ON tasks (user_id);"
    "CREATE INDEX IF NOT EXISTS ix_tasks_user_created ON tasks (user_id, created_at DESC);"
    "CREATE INDEX IF NOT EXISTS ix_tasks_pending_reminders ON tasks (reminder_at)"
    " WHERE reminder_at IS NOT NULL AND NOT reminder_sent AND NOT completed;"
    "CREATE INDEX IF NOT EXISTS ix_tasks_parent_task_id ON tasks (parent_task_id);"
    "CREATE INDEX IF NOT EXISTS ix_tags_user_id ON tags (user_id);"
    "CREATE INDEX IF NOT EXISTS ix_task_tags_tag_id ON task_tags (tag_id);"
    "CREATE INDEX IF NOT EXISTS ix_conversations_user_id ON conversations (user_id);"
    "CREATE INDEX IF NOT EXISTS ix_messages_conversation_created"
    " ON messages (conversation_id, created_at)",

    /* 3: how the API writes a stored (UTC) timestamp: 2026-02-04T12:00:00.123456+00:00;
     * a plain SQL function, which the planner inlines */
    "CREATE OR REPLACE FUNCTION taskora_iso_utc(ts timestamp without time zone) RETURNS text"
    " LANGUAGE sql STABLE PARALLEL SAFE"
    " AS $$ SELECT to_char(ts, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') $$",

    /* 4: chat messages counted against each user's daily quota (one row per user: the UTC
     * day of its last message and that day's count), shared by every replica */
    "CREATE TABLE IF NOT EXISTS taskora_chat_usage ("
    " user_id VARCHAR NOT NULL PRIMARY KEY,"
    " day DATE NOT NULL,"
    " messages INTEGER NOT NULL)",

    /* 5: emails unique case-insensitively, an index that also serves the login's lookup. A
     * database that already holds case-duplicates keeps them: every later duplicate gets its
     * own id as a second index key, so they stay apart and can still log in with their exact
     * email, while the first of each group, and every new row, has 0 and so collides with any
     * other spelling. (The table is locked first: no duplicate arrives between look and index.) */
    "LOCK TABLE users IN SHARE MODE;"
    "DO $$ DECLARE later text; BEGIN"
    " SELECT string_agg(id::text, ',' ORDER BY id) INTO later FROM (SELECT id,"
    "  row_number() OVER (PARTITION BY lower(email) ORDER BY id) AS n FROM users) d WHERE n > 1;"
    " IF later IS NULL THEN"
    "  CREATE UNIQUE INDEX ix_users_email_lower ON users (lower(email));"
    " ELSE"
    "  EXECUTE 'CREATE UNIQUE INDEX ix_users_email_lower ON users (lower(email),"
    " (CASE WHEN id IN (' || later || ') THEN id ELSE 0 END))';"
    " END IF; END $$",

    /* 6: tokens revoked by a logout, kept a while past their expiry (keyed by "j:" + jti, or
     * "m:" + the MAC of a token without one) */
    "CREATE TABLE IF NOT EXISTS revoked_tokens ("
    " jti TEXT PRIMARY KEY,"
    " expires_at TIMESTAMP WITH TIME ZONE NOT NULL);"
    "CREATE INDEX IF NOT EXISTS ix_revoked_tokens_expires_at ON revoked_tokens (expires_at)",
    NULL,
};
