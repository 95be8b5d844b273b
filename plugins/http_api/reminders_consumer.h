/* The HTTP API plugin's consumer: tasks.reminder_sent follows the task.reminder events. */
#ifndef HTTP_API_REMINDERS_CONSUMER_H
#define HTTP_API_REMINDERS_CONSUMER_H

#include <taskora/plugin.h>

/* The descriptor's consume: state is the plugin's api. */
tk_consume_result api_reminders_consume(void *state, const tk_event *ev);

#endif
