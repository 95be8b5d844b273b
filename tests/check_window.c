/*
 * realtime's window of recent events (plugins/realtime/window.c): the SSE ids it writes and
 * reads back, what it keeps, and when a Last-Event-ID can be resumed from it.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "testhelp.h"
#include "window.h"

#define NOW 1764662400000LL /* ms */

START_TEST(test_ids_name_the_topic_partition_offset_and_time_and_read_back)
{
    window w;
    win_init(&w, 300000, 1 << 20, NOW);
    win_pos p;
    ck_assert_ptr_nonnull(
        win_add(&w, "task-events", 3, 1234, NOW - 5, NOW, "7", "task.created", "{}", &p));
    char id[128];
    win_id(&w, p, id, sizeof(id));
    ck_assert_str_eq(id, "task-events:3:1234:1764662399995");
    win_pos q;
    ck_assert_int_eq(win_parse_id(&w, id, &q), 0);
    ck_assert_int_eq(q.part, p.part);
    ck_assert_int_eq(q.offset, 1234);
    ck_assert_int_eq(q.time_ms, NOW - 5);
    /* a topic name with colons in it reads back too */
    ck_assert_int_eq(win_parse_id(&w, "a:b:3:1:2", &q), 0);
    ck_assert_int_eq(q.part, -1);
    ck_assert_int_eq(q.offset, 1);
    /* what is not such an id */
    const char *bad[] = {"",
                         "12345",
                         "task-events:3:1234",
                         ":3:1:2",
                         "task-events::1:2",
                         "task-events:3:-1:2",
                         "task-events:3:1:",
                         "task-events:x:1:2",
                         "task-events:3:1:2 ",
                         "task-events:2147483648:1:2",
                         "task-events:3:9223372036854775807:2",
                         "task-events:3:99999999999999999999:2",
                         "dapr:17"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(win_parse_id(&w, bad[i], &q) == -1, "%s was read as an id", bad[i]);
    ck_assert_int_eq(win_parse_id(&w, NULL, &q), -1);
    win_free(&w);
}
END_TEST

START_TEST(test_a_resume_is_covered_only_from_the_first_offset_kept)
{
    window w;
    /* room for about three events */
    win_init(&w, 300000, 3 * (sizeof(win_event) + 40), NOW);
    win_pos p[6];
    for (int i = 0; i < 6; i++)
        win_add(&w, "t", 0, 100 + i, NOW, NOW, "7", "task.created", "{\"n\":1}", &p[i]);
    ck_assert_uint_le(w.count, 3);
    ck_assert_uint_ge(w.count, 2);
    int64_t base = w.parts[0].base;
    ck_assert_int_eq(base, w.head->pos.offset);
    /* the last one before the first kept is covered; anything older is not */
    ck_assert(win_covers(&w, (win_pos){0, base - 1, NOW}));
    ck_assert(!win_covers(&w, (win_pos){0, base - 2, NOW}));
    ck_assert(win_covers(&w, p[5]));
    /* a partition read nothing of: covered when its event is not older than the rewind */
    ck_assert(win_covers(&w, (win_pos){-1, 5, NOW - 299000}));
    ck_assert(!win_covers(&w, (win_pos){-1, 5, NOW - 301000}));
    win_free(&w);
}
END_TEST

START_TEST(test_old_events_and_events_for_no_stream_move_coverage_on)
{
    window w;
    win_init(&w, 60000, 1 << 20, NOW);
    win_pos p;
    /* older than the retention: not kept, and a resume from before it must resync */
    ck_assert_ptr_null(win_add(&w, "t", 1, 10, NOW - 61000, NOW, "7", "x", "{}", &p));
    ck_assert_int_eq(w.parts[p.part].base, 11);
    ck_assert(!win_covers(&w, (win_pos){p.part, 9, NOW}));
    ck_assert(win_covers(&w, (win_pos){p.part, 10, NOW}));
    /* an event for no user is not kept either */
    ck_assert_ptr_null(win_add(&w, "t", 1, 11, NOW, NOW, NULL, NULL, NULL, &p));
    ck_assert_int_eq(w.parts[p.part].base, 12);
    ck_assert_uint_eq(w.count, 0);
    /* kept events expire as time passes */
    ck_assert_ptr_nonnull(win_add(&w, "t", 1, 12, NOW, NOW, "7", "x", "{}", &p));
    ck_assert_ptr_nonnull(win_add(&w, "t", 1, 13, NOW + 61000, NOW + 61000, "7", "x", "{}", &p));
    ck_assert_uint_eq(w.count, 1);
    ck_assert_int_eq(w.parts[p.part].base, 13);
    /* no retention: nothing kept, no resume */
    win_free(&w);
    win_init(&w, 0, 1 << 20, NOW);
    ck_assert_ptr_null(win_add(&w, "t", 1, 1, NOW, NOW, "7", "x", "{}", &p));
    ck_assert(!win_covers(&w, p));
    win_free(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("window");
    TCase *tc = tcase_create("window");
    tcase_add_test(tc, test_ids_name_the_topic_partition_offset_and_time_and_read_back);
    tcase_add_test(tc, test_a_resume_is_covered_only_from_the_first_offset_kept);
    tcase_add_test(tc, test_old_events_and_events_for_no_stream_move_coverage_on);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
