#!/usr/bin/python3
"""The web app in a real browser: headless Chromium, driven through Selenium, against the built
taskorad with every plugin (the API, the Gemini provider pointed at tests/fake_ai_server,
real-time push, notifications with a scheduler that fires within a second, analytics, and the
webui plugin serving plugins/webui/www from the source tree), the embedded Kafka-protocol broker
and a fresh database on the TASKORA_TEST_DATABASE_URL server. See harness.py for the helpers.

One person's whole way through the app, through its pages (the API plays another tab, or
checks what the pages did), a step each: / sends a browser to the login page; registering
through the form lands on the tasks with the live badge on; tags (with colours) from the tags
dialog, and tasks from the task dialog (two tags and high priority, a past due date shown
overdue, a daily recurrence); the filters (tag, priority, search, overdue), the sort orders and
the pages (25 tasks from another tab, then deleted there); completing the recurring task (the
toast names the next due date, the next one appears); a reminder set in the task dialog rings
the bell, which marks it read; the assistant adds a task through the fake provider, which shows
in the list; a task made in another tab appears without a reload; a provider that is down gives
the chat's "unavailable, try again" and keeps the text; the analytics show the flow's counts
for 7, 30 and 90 days, with bars; no sideways scroll at 375 px on the tasks, analytics and
assistant; a screenshot of the tasks at 1280x800 (TK_BUILDDIR/tests/webui-tasks.png); log out
and in again; deleting the account, after which its login fails with a readable message.

Date and colour fields are filled the way their pickers fill them (value, then input and change
events): Chromium's pickers take no typing that is the same in every locale.

Run through `make check` (tests/webui_browser.sh, which builds tests/fake_ai_server), or by
hand from the build folder:
    make tests/fake_ai_server && TK_BUILDDIR=$PWD TK_SRCDIR=/path/to/src \\
    TASKORA_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:PORT/postgres \\
    /usr/bin/python3 /path/to/src/tests/browser/run.py

Plain build only: tests/webui_browser.sh skips it in the sanitizer build (TK_SANITIZERS=yes),
which would test the same C code again at many times the cost. Skipped (77) without Chromium,
chromedriver, Selenium or a database, unless TASKORA_REQUIRE_BROWSER, TASKORA_REQUIRE_DB or CI
is set (then that is a failure, 99). Time limit: TASKORA_BROWSER_TIMEOUT seconds (180).
"""

import datetime
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import main  # noqa: E402

PASSWORD = "browser-pw-1"

# The rows of the task list as shown, read in one go (the list re-renders under the test, so
# no element is held across waits): [{id, title, completed, overdue, priority, tags, ...}].
ROWS_JS = """
const list = document.getElementById("task-list");
if (!list || list.getAttribute("aria-busy") === "true") return null;
return [...list.querySelectorAll("[data-test=task-row]")].map((r) => {
  const q = (s) => r.querySelector(s);
  return {
    id: r.dataset.taskId, completed: r.dataset.completed === "true",
    overdue: r.dataset.overdue === "true",
    title: q("[data-test=task-title]").textContent,
    priority: q("[data-test=task-priority]")?.dataset.priority ?? null,
    priority_text: q("[data-test=task-priority]")?.textContent ?? null,
    overdue_chip: Boolean(q("[data-test=task-overdue]")),
    recurrence: q("[data-test=task-recurrence]")?.textContent ?? null,
    reminder: q("[data-test=task-reminder]")?.textContent ?? null,
    tags: [...r.querySelectorAll("[data-test=tag-chip]")].map((c) => c.textContent.trim()),
  };
});
"""

# A datetime-local value (the browser's local time, to the second) `seconds` from now.
LOCAL_INPUT_JS = """
const d = new Date(Date.now() + arguments[0] * 1000);
const p = (n) => String(n).padStart(2, "0");
return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:` +
  `${p(d.getMinutes())}:${p(d.getSeconds())}`;
"""


def toast_texts(d):
    return d.execute_script(
        "return [...document.querySelectorAll('[data-test=toast] .toast-text')]"
        ".map((t) => t.textContent)")


def flow(h):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    d = h.driver
    email = f"flow-{os.getpid()}@example.com"
    s = {}  # what the flow made, for the later steps

    def rows():
        return d.execute_script(ROWS_JS)

    def wait_rows(pred, what, timeout=10):
        """Waits until the (settled) list satisfies pred; returns the rows."""
        return h.wait_for(lambda _: (lambda r: r if r is not None and pred(r) else None)(rows()),
                          timeout, what)

    def titles_are(expected):
        return lambda r: [x["title"] for x in r] == expected

    def set_value(css, value):
        """Fills a field a person fills with a picker (colour, date and time) and fires what
        the picker fires."""
        el = h.find(css)
        d.execute_script("arguments[0].value = arguments[1];"
                         "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
                         "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
                         el, value)
        # a date-and-time field normalizes "…T12:21:00" to "…T12:21" (no seconds when zero)
        normal = value[:-3] if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00", value) else value
        assert el.get_attribute("value") == normal, (css, el.get_attribute("value"), value)

    def local_in(seconds):
        return d.execute_script(LOCAL_INPUT_JS, seconds)

    def gone(css):
        return lambda dr: not dr.execute_script("return document.querySelector(arguments[0])", css)

    def no_reload_marker():
        d.execute_script("window.__flowMarker = 'still here'")
        return lambda: d.execute_script("return window.__flowMarker") == "still here"

    def api(method, path, body=None):
        return h.api(method, path, body, s["token"])

    def go(nav, ready_css):
        h.click(nav)
        h.find(ready_css)

    def create_task(title, priority=None, tags=(), due=None, recurrence=None, reminder=None):
        h.click("#new-task")
        h.find("#task-dialog[open]")
        h.type("#task-title", title)
        if priority:
            Select(h.find("#task-priority")).select_by_value(priority)
        for tag in tags:
            h.click(f"#task-tag-{s['tags'][tag]}")
        if due:
            set_value("#task-due", due)
        if recurrence:
            Select(h.find("#task-recurrence")).select_by_value(recurrence)
        if reminder:
            set_value("#task-reminder", reminder)
        h.click("#task-save")
        h.wait_for(gone("#task-dialog"), what=f"the task dialog to close after saving {title!r}")
        r = wait_rows(lambda r: [x for x in r if x["title"] == title], f"the row of {title!r}")
        (row,) = [x for x in r if x["title"] == title]
        s["created"] += 1
        return row

    with h.step("a browser opening / lands on the app's login page"):
        h.open("/")
        h.wait_for(lambda dr: dr.current_url == h.url + "/app/", what="the redirect to /app/")
        h.find("[data-test=login-page]")
        h.wait_for(lambda dr: dr.title == "Log in · Taskora", what="the title Log in · Taskora")
        assert h.find("#login-email") == d.switch_to.active_element, "the email has the focus"
        h.open("/app")
        h.wait_for(lambda dr: dr.current_url == h.url + "/app/", what="the /app redirect")
        h.find("[data-test=login-page]")

    with h.step("register through the form and land on the tasks, live"):
        h.click("#show-register")
        h.find("[data-test=register-page]")
        assert d.title == "Create account · Taskora", d.title
        h.type("#register-name", "Flow Tester")
        h.type("#register-email", email)
        h.type("#register-password", PASSWORD)
        h.click("#register-submit")
        h.find("#tasks-heading")
        h.wait_for(lambda dr: dr.title == "Tasks · Taskora", what="the title Tasks · Taskora")
        assert d.execute_script("return location.hash") == "#/tasks"
        assert h.find("#nav-tasks").get_attribute("aria-current") == "page"
        h.wait_for(lambda dr: h.find("#conn-state").get_attribute("data-state") == "live",
                   what="the connection badge to read live")
        assert h.find("#conn-state").text == "Live"
        h.find("#empty-new-task")  # the empty state of a new account
        h.click("#account-button")
        assert h.find("#account-email").text == email
        h.click("#account-button")
        s["token"] = d.execute_script("return localStorage.getItem('taskora.token')")
        r = api("GET", "/api/auth/me")
        assert r.status == 200 and r.json["email"] == email, r
        s["created"] = 0

    with h.step("tags, then tasks with tags, priority, a past due date and a recurrence"):
        h.click("#manage-tags")
        h.find("#tags-dialog[open]")
        s["tags"] = {}
        for name, colour in (("Work", "#e11d48"), ("Home", "#16a34a"), ("Errands", "#2563eb")):
            h.type("#tag-name", name)
            set_value("#tag-color", colour)
            h.click("#tag-create")
            h.wait_for(lambda dr: dr.execute_script(
                "return [...document.querySelectorAll('#tag-list [data-test=tag-row]')]"
                ".find((r) => r.textContent.includes(arguments[0]))?.dataset.tagId", name),
                what=f"the tag {name} in the list")
        r = api("GET", "/api/tags")
        assert r.status == 200, r
        assert sorted((t["name"], t["color"].lower()) for t in r.json) == \
            [("Errands", "#2563eb"), ("Home", "#16a34a"), ("Work", "#e11d48")], r
        s["tags"] = {t["name"]: t["id"] for t in r.json}
        h.click("#tags-done")
        h.wait_for(gone("#tags-dialog"), what="the tags dialog to close")
        h.wait_for(lambda dr: len(Select(h.find("#filter-tag")).options) == 4,
                   what="the tag filter to offer the three tags")

        row = create_task("Prepare the quarterly report", priority="high", tags=("Work", "Errands"))
        assert row["priority"] == "high" and row["priority_text"] == "High", row
        assert sorted(row["tags"]) == ["Errands", "Work"], row
        assert not row["overdue"], row
        s["report"] = row["id"]

        row = create_task("Renew the passport", due=local_in(-2 * 86400))
        assert row["overdue"] and row["overdue_chip"] and row["priority"] == "medium", row
        assert row["tags"] == [], row
        s["passport"] = row["id"]

        row = create_task("Water the plants", tags=("Home",), due=local_in(86400),
                          recurrence="daily")
        assert row["recurrence"] == "Daily" and not row["overdue"], row
        assert row["tags"] == ["Home"], row
        s["plants"] = row["id"]
        r = api("GET", f"/api/tasks/{s['plants']}")
        assert r.status == 200 and r.json["is_recurring"] and \
            r.json["recurrence_rule"] == "daily", r

        wait_rows(titles_are(["Water the plants", "Renew the passport",
                              "Prepare the quarterly report"]), "the three tasks, newest first")

    with h.step("filter by tag, priority, text, overdue; sort; page"):
        all3 = ["Water the plants", "Renew the passport", "Prepare the quarterly report"]
        Select(h.find("#filter-tag")).select_by_value(str(s["tags"]["Work"]))
        wait_rows(titles_are(["Prepare the quarterly report"]), "only the Work task")
        h.find("#clear-filters")
        Select(h.find("#filter-tag")).select_by_value(str(s["tags"]["Home"]))
        wait_rows(titles_are(["Water the plants"]), "only the Home task")
        Select(h.find("#filter-tag")).select_by_value("")
        wait_rows(titles_are(all3), "all three again")

        Select(h.find("#filter-priority")).select_by_value("high")
        wait_rows(titles_are(["Prepare the quarterly report"]), "only the high-priority task")
        Select(h.find("#filter-priority")).select_by_value("low")
        h.find("#task-empty")
        assert "No tasks match these filters." in h.find("#task-empty").text
        h.click("#empty-clear-filters")
        wait_rows(titles_are(all3), "all three after clearing the filters")
        assert Select(h.find("#filter-priority")).first_selected_option.get_attribute("value") == ""

        h.type("#task-search", "PASSPORT")  # applied 300 ms after the typing stops
        wait_rows(titles_are(["Renew the passport"]), "the search's match")
        h.find("#task-search").send_keys(Keys.CONTROL, "a")
        h.find("#task-search").send_keys("plants", Keys.ENTER)
        wait_rows(titles_are(["Water the plants"]), "the second search's match")
        h.click("#clear-filters")
        wait_rows(titles_are(all3), "all three after clearing the search")
        assert h.find("#task-search").get_attribute("value") == ""

        h.click("#filter-overdue")
        wait_rows(titles_are(["Renew the passport"]), "only the overdue task")
        h.click("#filter-overdue")
        wait_rows(titles_are(all3), "all three without the overdue filter")

        Select(h.find("#sort-by")).select_by_value("title")
        wait_rows(titles_are(sorted(all3, reverse=True)), "sorted by title, descending")
        h.click("#sort-order")
        wait_rows(titles_are(sorted(all3)), "sorted by title, ascending")
        assert h.find("#sort-order").get_attribute("data-order") == "asc"
        Select(h.find("#sort-by")).select_by_value("due_date")
        wait_rows(lambda r: [x["title"] for x in r][:2] ==
                  ["Renew the passport", "Water the plants"], "sorted by due date, ascending")
        Select(h.find("#sort-by")).select_by_value("created_at")
        h.click("#sort-order")
        wait_rows(titles_are(all3), "sorted by creation, newest first")

        # paging: 25 more tasks from another tab; the list follows and pages them
        for i in range(25):
            assert api("POST", "/api/tasks", {"title": f"Batch task {i:02d}"}).status == 201
            s["created"] += 1
        h.wait_for(lambda dr: h.find("#page-info").text == "1–20 of 28",
                   what="#page-info 1–20 of 28")
        assert len(rows()) == 20 and h.find("#page-prev").get_attribute("disabled")
        h.click("#page-next")
        h.wait_for(lambda dr: h.find("#page-info").text == "21–28 of 28",
                   what="#page-info 21–28 of 28")
        wait_rows(lambda r: r[-1]["title"] == "Prepare the quarterly report" and len(r) == 8,
                  "the second page, ending with the first task")
        assert h.find("#page-next").get_attribute("disabled")
        h.click("#page-prev")
        h.wait_for(lambda dr: h.find("#page-info").text == "1–20 of 28",
                   what="back on the first page")
        h.click("#page-next")
        h.wait_for(lambda dr: h.find("#page-info").text == "21–28 of 28", what="page two again")
        # the other tab deletes them: the page empties and the list goes back to what is left
        batch = [t["id"] for t in api("GET", "/api/tasks?search=Batch%20task&limit=100").json]
        assert len(batch) == 25, batch
        for tid in batch:
            assert api("DELETE", f"/api/tasks/{tid}").status in (200, 204)
        wait_rows(titles_are(all3), "the three tasks after the batch was deleted", timeout=15)
        assert h.find("#page-info").text == "1–3 of 3"
        s["deleted"] = 25

    with h.step("complete the recurring task: the toast names the next due date"):
        h.click(f"#task-check-{s['plants']}")
        r = h.wait_for(lambda _: [t for t in api("GET", "/api/tasks?search=plants").json
                                  if str(t["id"]) != s["plants"]],
                       what="the next instance in the API")
        (nxt,) = r
        s["plants_next"] = str(nxt["id"])
        r = api("GET", f"/api/tasks/{s['plants']}").json
        assert r["completed"], r
        old_due = datetime.datetime.fromisoformat(r["due_date"].replace("Z", "+00:00"))
        new_due = datetime.datetime.fromisoformat(nxt["due_date"].replace("Z", "+00:00"))
        assert new_due - old_due == datetime.timedelta(days=1), (old_due, new_due)
        shown = d.execute_async_script(
            "import('/app/ui.js').then((m) => arguments[1](m.formatDateTime(arguments[0])))",
            nxt["due_date"])
        want = f"Completed “Water the plants”. The next one is due {shown}."
        h.wait_for(lambda dr: want in toast_texts(dr), what=f"the toast {want!r}")
        r = wait_rows(lambda r: len(r) == 4, "four rows with the next instance")
        by_id = {x["id"]: x for x in r}
        assert by_id[s["plants"]]["completed"], by_id[s["plants"]]
        n = by_id[s["plants_next"]]
        assert n["title"] == "Water the plants" and not n["completed"] and \
            n["recurrence"] == "Daily" and n["tags"] == ["Home"], n
        s["completed"] = 1

    with h.step("a reminder set in the task dialog rings the bell"):
        assert h.find("#bell-button").get_attribute("aria-label") == "Notifications, 0 unread"
        d.execute_script("document.querySelector(arguments[0]).click()",
                         f"[data-task-id='{s['passport']}'] [data-test=task-edit]")
        h.find("#task-dialog[open]")
        assert h.find("#task-title").get_attribute("value") == "Renew the passport"
        set_value("#task-reminder", local_in(4))
        h.click("#task-save")
        h.wait_for(gone("#task-dialog"), what="the task dialog to close")
        wait_rows(lambda r: any(x["id"] == s["passport"] and (x["reminder"] or "")
                                .startswith("Reminder ") for x in r), "the row's reminder")
        h.wait_for(lambda dr: h.find("#bell-button").get_attribute("aria-label") ==
                   "Notifications, 1 unread", timeout=30, what="the bell to count the reminder")
        assert h.find("[data-test=bell-badge]").text == "1"
        h.wait_for(lambda dr: "Reminder: Renew the passport" in toast_texts(dr),
                   what="the reminder's toast")
        wait_rows(lambda r: any(x["id"] == s["passport"] and x["reminder"] == "Reminder sent"
                                for x in r), "the row to say Reminder sent")
        h.click("#bell-button")
        h.find("#bell-panel[open]")
        item = h.find("[data-test=bell-item][data-unread=true]")
        assert "Renew the passport" in item.text, item.text
        h.click("[data-test=bell-item][data-unread=true] [data-test=bell-mark-read]")
        h.find("[data-test=bell-item][data-unread=false]")
        h.wait_for(lambda dr: h.find("#bell-button").get_attribute("aria-label") ==
                   "Notifications, 0 unread", what="the unread count to go to 0")
        assert not h.find("#bell-button").find_element(
            "css selector", "[data-test=bell-badge]").is_displayed()
        h.wait_for(lambda dr: h.find("#bell-status").text == "All read.", what="All read.")
        h.click("#bell-close")
        h.wait_for(gone("#bell-panel[open]"), what="the bell panel to close")

    with h.step("the assistant adds a task in another tab; the task list shows it live"):
        h.fake_ai.add_task("Buy milk")
        h.fake_ai.text("Added Buy milk.")
        # this tab keeps the task list open; the chat happens in a second tab
        list_tab = d.current_window_handle
        still_here = no_reload_marker()
        d.switch_to.new_window("tab")
        h.open("/app/#/assistant")
        h.find("#chat-input")
        h.wait_for(lambda dr: dr.title == "Assistant · Taskora", what="the assistant's title")
        h.type("#chat-input", "Please remember that I need to buy milk")
        h.click("#chat-send")
        h.wait_for(lambda dr: dr.execute_script(
            "return [...document.querySelectorAll('[data-test=chat-message][data-role=assistant]"
            " [data-test=chat-message-text]')].map((t) => t.textContent)") == ["Added Buy milk."],
            timeout=20, what="the assistant's answer")
        calls = h.find("[data-test=chat-tool-calls]")
        assert "add_task" in calls.text, calls.text
        calls.click()  # the <details> opens
        call = h.find("[data-test=chat-tool-call][data-tool=add_task]")
        assert "Buy milk" in call.text, call.text
        assert [m.text for m in d.find_elements(
            "css selector", "[data-test=chat-message][data-role=user] "
            "[data-test=chat-message-text]")] == ["Please remember that I need to buy milk"]
        assert h.find("#chat-input").get_attribute("value") == ""
        assert h.fake_ai.pending() == 0
        s["created"] += 1
        d.close()
        d.switch_to.window(list_tab)
        wait_rows(lambda r: r and r[0]["title"] == "Buy milk", "Buy milk at the top of the list")
        assert still_here(), "the task list was reloaded"

    with h.step("a task made in another tab shows up without a reload"):
        still_here = no_reload_marker()
        r = api("POST", "/api/tasks", {"title": "Call the plumber", "priority": "urgent"})
        assert r.status == 201, r
        s["created"] += 1
        r = wait_rows(lambda r: r and r[0]["title"] == "Call the plumber",
                      "the other tab's task at the top")
        assert r[0]["priority"] == "urgent", r[0]
        assert still_here(), "the page was reloaded"

    with h.step("the provider is down: the chat says so and keeps the text",
                allow_console=[r"status of 503"]):
        before = h.fake_ai.count()
        for _ in range(2):  # the provider's retry policy (harness config) tries twice
            h.fake_ai.error(503)
        go("#nav-assistant", "#chat-input")
        h.type("#chat-input", "What is due this week?")
        h.click("#chat-send")
        err = h.wait_for(lambda dr: (lambda e: e if e.is_displayed() and e.text else None)(
            h.find("#chat-error")), timeout=20, what="the chat's error")
        assert "unavailable" in err.text and "try again" in err.text, err.text
        assert h.find("#chat-input").get_attribute("value") == "What is due this week?"
        assert h.find("#chat-send").is_enabled()
        assert h.fake_ai.pending() == 0 and h.fake_ai.count() > before

    with h.step("analytics counts what the flow did"):
        want = {"created": s["created"], "completed": s["completed"], "deleted": s["deleted"]}

        def counted(days):
            r = api("GET", f"/api/analytics/summary?days={days}")
            assert r.status == 200, r
            t = r.json["totals"]
            return t if all(t[k] == v for k, v in want.items()) else None

        h.wait_for(lambda _: counted(30), timeout=20, what=f"the analytics to count {want}")
        go("#nav-analytics", "#analytics-view")
        assert d.title == "Analytics · Taskora"
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        def chosen(days):  # the radio buttons are hidden behind their labels
            return d.execute_script("return document.getElementById(arguments[0]).checked",
                                    f"an-days-{days}")

        assert chosen(30), "30 days by default"
        for days in (30, 7, 90, 30):
            if not chosen(days):
                h.click(f"label[for=an-days-{days}]")
            h.wait_for(lambda dr: chosen(days), what=f"{days} days chosen")
            h.wait_for(lambda dr: h.find("#an-results").get_attribute("aria-busy") == "false" and
                       h.find("#an-total-created").text == str(want["created"]),
                       what=f"the {days}-day totals")
            assert h.find("#an-total-completed").text == str(want["completed"])
            assert h.find("#an-total-deleted").text == str(want["deleted"])
            assert h.find("#an-total-chat_messages").text != "0"
            days_shown = d.find_elements("css selector",
                                         "[data-test=an-chart-svg] [data-test=an-day]")
            assert len(days_shown) == days, (days, len(days_shown))
            bars = d.find_elements("css selector", f"[data-test=an-chart-svg] "
                                   f"[data-test=an-day][data-date='{today}'] rect.an-bar")
            assert len(bars) == 2, f"today's created and completed bars: {len(bars)}"
            assert f"Last {days} days" in h.find("#an-status").text, h.find("#an-status").text

    with h.step("a phone-sized window scrolls only down; a screenshot of the tasks"):
        d.set_window_size(375, 800)
        h.wait_for(lambda dr: dr.execute_script("return window.innerWidth") <= 375,
                   what="the narrow window")
        width = d.execute_script("return window.innerWidth")

        def fits(where):
            sw = d.execute_script("return document.documentElement.scrollWidth")
            assert sw <= width, f"{where}: scrollWidth {sw} > {width}"

        h.find("#an-total-created")
        fits("analytics")
        go("#nav-tasks", "#tasks-heading")
        wait_rows(lambda r: len(r) == 6, "the six tasks")
        fits("tasks")
        assert h.find("#toggle-filters").get_attribute("aria-expanded") == "false"
        h.click("#toggle-filters")
        h.find("#filter-priority")
        fits("tasks with the filters unfolded")
        h.click("#toggle-filters")
        go("#nav-assistant", "#chat-view")
        fits("assistant")

        d.set_window_size(1280, 800)
        go("#nav-tasks", "#tasks-heading")
        wait_rows(lambda r: len(r) == 6, "the six tasks")
        h.wait_for(lambda dr: not toast_texts(dr), timeout=15, what="the toasts to go")
        d.execute_script("document.activeElement && document.activeElement.blur()")
        shot = os.path.join(h.builddir, "tests", "webui-tasks.png")
        assert d.save_screenshot(shot), shot

    with h.step("log out, log in again through the form"):
        h.click("#account-button")
        h.click("#logout")
        h.find("[data-test=login-page]")
        assert h.find("#login-error").text == "You have logged out."
        h.type("#login-email", email)
        h.type("#login-password", PASSWORD)
        h.click("#login-submit")
        h.find("#tasks-heading")
        wait_rows(lambda r: len(r) == 6, "the six tasks after logging in again")
        s["token"] = d.execute_script("return localStorage.getItem('taskora.token')")

    with h.step("delete the account; its login fails with a readable message",
                allow_console=[r"api/auth/login - Failed to load resource: .* status of 401"]):
        h.click("#account-button")
        h.click("#delete-account")
        h.find("#confirm-dialog[open]")
        h.click("#confirm-cancel")
        h.wait_for(gone("#confirm-dialog[open]"), what="the confirmation to close")
        assert api("GET", "/api/auth/me").status == 200, "cancel kept the account"
        h.click("#account-button")
        h.click("#delete-account")
        h.find("#confirm-dialog[open]")
        h.click("#confirm-ok")
        h.find("[data-test=login-page]")
        h.wait_for(lambda dr: h.find("#login-error").text == "Your account was deleted.",
                   what="the account-deleted notice")
        assert d.execute_script("return localStorage.getItem('taskora.token')") is None
        assert api("GET", "/api/auth/me").status == 401
        h.type("#login-email", email)
        h.type("#login-password", PASSWORD)
        h.click("#login-submit")
        msg = h.wait_for(lambda dr: (lambda e: e.text if e.text and "deleted" not in e.text
                                     else None)(h.find("#login-error")),
                         what="the login's error")
        assert "email or password" in msg.lower() and "{" not in msg, msg
        assert d.title == "Log in · Taskora"
        r = h.api("POST", "/api/auth/login", {"email": email, "password": PASSWORD})
        assert r.status == 401, r


if __name__ == "__main__":
    sys.exit(main(flow, int(os.environ.get("TASKORA_BROWSER_TIMEOUT", "180"))))
