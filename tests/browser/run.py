#!/usr/bin/python3
"""The web app in a real browser: headless Chromium, driven through Selenium, against the built
taskorad with every plugin (the API, the Gemini provider pointed at tests/fake_ai_server,
real-time push, notifications with a scheduler that fires within a second, analytics, and the
webui plugin serving plugins/webui/www from the source tree), the embedded Kafka-protocol broker
and a fresh database on the TASKORA_TEST_DATABASE_URL server. See harness.py for the helpers.

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
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import GEMINI_KEY, GEMINI_MODEL, http, main  # noqa: E402


def iso_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flow(h):
    with h.step("the web app's page loads without a console error"):
        h.open("/app/")  # (a browser opening / is sent here by http_api's root route)
        h.wait_for(lambda d: d.execute_script("return document.readyState") == "complete",
                   what="the page to load")
        h.wait_for(lambda d: d.title == "Taskora", what="the title Taskora")
        assert h.driver.current_url == h.url + "/app/", h.driver.current_url

    with h.step("/app redirects to /app/ in the browser"):
        h.open("/app")
        h.wait_for(lambda d: d.current_url == h.url + "/app/", what="the redirect to /app/")

    with h.step("the fake AI server answers in Gemini's wire format"):
        fake = h.fake_ai
        before = fake.count()
        fake.add_task("Check the fake")
        fake.text("Added it.")
        url = f"{fake.url}/v1beta/models/{GEMINI_MODEL}:generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": "add a task"}]}]}
        r = http("POST", url, body, {"x-goog-api-key": GEMINI_KEY})
        assert r.status == 200, r
        call = r.json["candidates"][0]["content"]["parts"][0]["functionCall"]
        assert call["name"] == "add_task" and call["args"] == {"title": "Check the fake"}, call
        r = http("POST", url, body, {"x-goog-api-key": GEMINI_KEY})
        assert r.status == 200, r
        assert r.json["candidates"][0]["content"]["parts"][0]["text"] == "Added it.", r
        assert fake.count() == before + 2 and fake.pending() == 0

    with h.step("the chat adds a task through the fake provider"):
        uid, token = h.register(f"browser-{os.getpid()}@example.com")
        h.fake_ai.add_task("Water the plants")
        h.fake_ai.text("I added Water the plants.")
        r = h.api("POST", f"/api/{uid}/chat", {"message": "remind me to water the plants"},
                  token)
        assert r.status == 200, r
        assert r.json["response"] == "I added Water the plants.", r
        assert [c["tool"] for c in r.json["tool_calls"]] == ["add_task"], r
        r = h.api("GET", "/api/tasks", token=token)
        assert r.status == 200 and [t["title"] for t in r.json] == ["Water the plants"], r

    with h.step("a reminder a few seconds ahead becomes a notification"):
        r = h.api("POST", "/api/tasks", {"title": "Stretch", "reminder_at": iso_in(3)}, token)
        assert r.status == 201, r
        task_id = r.json["id"]

        def notified():
            r = h.api("GET", "/api/notifications", token=token)
            assert r.status == 200, r
            return [n for n in r.json if n["task_id"] == task_id]

        (n,) = h.wait_for(lambda _: notified(), timeout=30, what="the reminder's notification")
        assert n["type"] == "reminder" and n["title"] == "Stretch" and n["read_at"] is None, n


if __name__ == "__main__":
    sys.exit(main(flow, int(os.environ.get("TASKORA_BROWSER_TIMEOUT", "180"))))
