/* The route registry: parameters, literal-first matching, 405s and refused patterns. */
#include <check.h>
#include <string.h>

#include "netaddr.h"
#include "routes.h"
#include "testhelp.h"

static int h1(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    (void)ud, (void)req, (void)resp;
    return 1;
}
static int h2(void *ud, const tk_http_request *req, tk_http_response *resp)
{
    (void)ud, (void)req, (void)resp;
    return 2;
}

START_TEST(test_parameters_are_extracted)
{
    tk_routes *r = tk_routes_new();
    ck_assert_int_eq(
        tk_routes_add(r, "GET", "/api/{user_id}/conversations/{cid}/messages", h1, NULL, "p"), 0);
    tk_route_match m;
    ck_assert_int_eq(tk_routes_match(r, "GET", "/api/7/conversations/42/messages", &m), 0);
    ck_assert_uint_eq(m.nparams, 2);
    ck_assert_str_eq(m.names[0], "{user_id}");
    ck_assert_str_eq(m.values[0], "7");
    ck_assert_str_eq(m.values[1], "42");
    tk_route_match_clear(&m);
    ck_assert_int_eq(tk_routes_match(r, "GET", "/api/7/conversations/42", &m), TK_ENOTFOUND);
    tk_route_match_clear(&m);
    tk_routes_free(r);
}
END_TEST

START_TEST(test_literal_segment_wins_over_parameter_in_any_order)
{
    tk_routes *r = tk_routes_new();
    ck_assert_int_eq(tk_routes_add(r, "GET", "/api/tasks/{id}", h1, NULL, "p"), 0);
    ck_assert_int_eq(tk_routes_add(r, "GET", "/api/tasks/reminders", h2, NULL, "p"), 0);
    tk_route_match m;
    ck_assert_int_eq(tk_routes_match(r, "GET", "/api/tasks/reminders", &m), 0);
    ck_assert_ptr_eq(m.route->handler, h2);
    tk_route_match_clear(&m);
    ck_assert_int_eq(tk_routes_match(r, "GET", "/api/tasks/12", &m), 0);
    ck_assert_ptr_eq(m.route->handler, h1);
    tk_route_match_clear(&m);
    /* trailing slash and HEAD */
    ck_assert_int_eq(tk_routes_match(r, "HEAD", "/api/tasks/12/", &m), 0);
    ck_assert_ptr_eq(m.route->handler, h1);
    tk_route_match_clear(&m);
    tk_routes_free(r);
}
END_TEST

START_TEST(test_wrong_method_lists_allowed_methods)
{
    tk_routes *r = tk_routes_new();
    tk_routes_add(r, "GET", "/api/tags/{id}", h1, NULL, "p");
    tk_routes_add(r, "PUT", "/api/tags/{id}", h1, NULL, "p");
    tk_routes_add(r, "DELETE", "/api/tags/{id}", h1, NULL, "p");
    tk_route_match m;
    ck_assert_int_eq(tk_routes_match(r, "POST", "/api/tags/3", &m), TK_ESTATE);
    ck_assert_str_eq(m.allow, "GET, PUT, DELETE");
    tk_route_match_clear(&m);
    tk_routes_free(r);
}
END_TEST

START_TEST(test_duplicates_and_bad_patterns_are_refused)
{
    tk_routes *r = tk_routes_new();
    ck_assert_int_eq(tk_routes_add(r, "GET", "/a/{id}", h1, NULL, "p"), 0);
    ck_assert_int_eq(tk_routes_add(r, "GET", "/a/{other}", h2, NULL, "q"), TK_EEXIST);
    ck_assert_int_eq(tk_routes_add(r, "POST", "/a/{id}", h2, NULL, "q"), 0);
    ck_assert_int_eq(tk_routes_add(r, "GET", "a/b", h1, NULL, "p"), TK_EINVAL);
    ck_assert_int_eq(tk_routes_add(r, "GET", "/a/x{id}", h1, NULL, "p"), TK_EINVAL);
    ck_assert_int_eq(tk_routes_add(r, "GET", "/a/{}", h1, NULL, "p"), TK_EINVAL);
    ck_assert_int_eq(tk_routes_add(r, "get", "/b", h1, NULL, "p"), TK_EINVAL);
    ck_assert_int_eq(tk_routes_add(r, "GET", "/b", NULL, NULL, "p"), TK_EINVAL);
    tk_routes_free(r);
}
END_TEST

START_TEST(test_client_address_comes_from_trusted_proxies_only)
{
    tk_cidr nets[2];
    ck_assert_int_eq(tk_cidr_parse("10.0.0.0/8", &nets[0]), 0);
    ck_assert_int_eq(tk_cidr_parse("::1", &nets[1]), 0);
    ck_assert_int_eq(tk_cidr_parse("10.0.0.0/33", &nets[0]), TK_EINVAL);
    ck_assert_int_eq(tk_cidr_parse("nonsense", &nets[0]), TK_EINVAL);
    ck_assert_int_eq(tk_cidr_parse("", &nets[0]), TK_EINVAL);
    ck_assert(tk_cidr_match(nets, 2, "10.200.3.4"));
    ck_assert(tk_cidr_match(nets, 2, "::ffff:10.1.1.1"));
    ck_assert(!tk_cidr_match(nets, 2, "11.0.0.1"));
    ck_assert(!tk_cidr_match(nets, 2, "::2"));
    char out[48];
    /* an untrusted peer's X-Forwarded-For is ignored */
    tk_client_addr("203.0.113.9", "1.2.3.4", nets, 2, out, sizeof(out));
    ck_assert_str_eq(out, "203.0.113.9");
    /* a trusted peer: the nearest untrusted hop, not what the client wrote further left */
    tk_client_addr("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9", nets, 2, out, sizeof(out));
    ck_assert_str_eq(out, "198.51.100.7");
    tk_client_addr("::1", " ::ffff:198.51.100.8 ", nets, 2, out, sizeof(out));
    ck_assert_str_eq(out, "198.51.100.8");
    /* garbage stops the walk at the last trusted hop */
    tk_client_addr("10.0.0.2", "1.1.1.1, junk, 10.0.0.3", nets, 2, out, sizeof(out));
    ck_assert_str_eq(out, "10.0.0.3");
    tk_client_addr("10.0.0.2", ",,,", nets, 2, out, sizeof(out));
    ck_assert_str_eq(out, "10.0.0.2");
    /* no trusted proxies configured: always the peer */
    tk_client_addr("10.0.0.2", "1.2.3.4", nets, 0, out, sizeof(out));
    ck_assert_str_eq(out, "10.0.0.2");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("routes");
    TCase *tc = tcase_create("routes");
    tcase_add_test(tc, test_parameters_are_extracted);
    tcase_add_test(tc, test_literal_segment_wins_over_parameter_in_any_order);
    tcase_add_test(tc, test_wrong_method_lists_allowed_methods);
    tcase_add_test(tc, test_duplicates_and_bad_patterns_are_refused);
    tcase_add_test(tc, test_client_address_comes_from_trusted_proxies_only);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
