"""The browser tests' harness: a whole Taskora (the built taskorad with every plugin, the web app
from the source tree, the embedded broker, a fresh database, a fake Gemini server) and a
headless Chromium driven through Selenium, with waits on conditions, steps that leave a
screenshot and the console behind when they fail, and no console error let through.

Use (see run.py):

    with Harness() as h:
        with h.step("login page"):
            h.open("/app/")
            h.wait_for(lambda d: d.title == "Log in · Taskora", what="the page's title")

Everything the harness starts ends with it: taskorad, the fake AI server and the browser are
stopped on the way out (also on a failure, SIGTERM, SIGINT or the overall time limit), and they
are killed with it if this process is killed.
"""

import contextlib
import ctypes
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77  # what automake's test driver counts as skipped
HARD_ERROR = 99

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
GEMINI_KEY = "browser-test-gemini-key"
GEMINI_MODEL = "gemini-test"
JWT_SECRET = "browser-test-secret-0123456789abcdef0123"

PLUGINS = ["http_api", "ai_gemini", "realtime", "notifications", "analytics", "webui"]


class HarnessError(Exception):
    """The test environment could not be set up (not a failure of the app)."""


def env_true(name):
    v = os.environ.get(name, "")
    return v != "" and v != "0" and v.lower() not in ("false", "no")


def required():
    """Must this run test the browser (and the database) instead of skipping?"""
    return env_true("TASKORA_REQUIRE_BROWSER") or env_true("TASKORA_REQUIRE_DB") or env_true("CI")


def skip_or_fail(why):
    """Exits 77 (skipped) for a missing prerequisite, or 99 when the run requires it."""
    if required():
        print(f"FAIL: {why}, and this run requires the browser tests "
              "(TASKORA_REQUIRE_BROWSER, TASKORA_REQUIRE_DB or CI is set)", file=sys.stderr)
        sys.exit(HARD_ERROR)
    print(f"SKIP: {why}", file=sys.stderr)
    sys.exit(SKIP)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process ends, however it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _url_with_db(url, db):
    """The admin URL (postgresql://... or a conninfo string) naming database db instead."""
    if url.startswith(("postgres://", "postgresql://")):
        p = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))
    return f"{url} dbname={db}"


class Response:
    """An HTTP answer: status, headers (a dict with lower-case names), text and JSON (or None)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if self.text else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.text[:300]}>"


def http(method, url, body=None, headers=None, timeout=15):
    """One HTTP exchange; a 4xx or 5xx is an answer like any other (no exception)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


class FakeAI:
    """tests/fake_ai_server: a fake Gemini that speaks the real wire format and answers the
    replies queued here, in order (then the text "ok"). See the program's header comment."""

    def __init__(self, program, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([program, "--provider", "gemini", "--key", GEMINI_KEY],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1,
                                     preexec_fn=_die_with_parent)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise HarnessError(f"{program} did not print its URL (got {self.url!r})")

    def _command(self, line):
        if "\n" in line:
            raise ValueError("a command is one line")
        self.proc.stdin.write(line + "\n")
        answer = self.proc.stdout.readline().rstrip("\n")
        if not answer.startswith("ok"):
            raise HarnessError(f"fake AI server: {line!r}: {answer!r}")
        return answer[3:]

    def add_task(self, title):
        """Queues a call of the add_task tool with this title."""
        self._command("add_task " + title)

    def tool_calls(self, calls):
        """Queues tool calls: [{"name": "complete_task", "args": {...}}, ...]."""
        self._command("tool_calls " + json.dumps(calls))

    def text(self, text):
        """Queues a text answer."""
        self._command("text " + text)

    def error(self, status, retry_after_s=None):
        """Queues Gemini's error answer for an HTTP status (429 with RetryInfo when given)."""
        self._command(f"error {status}" + ("" if retry_after_s is None else f" {retry_after_s}"))

    def count(self):
        """Requests received so far."""
        return int(self._command("count"))

    def pending(self):
        """Queued replies not used yet."""
        return int(self._command("pending"))

    def violations(self):
        """(number of requests refused as malformed, why the last one was, or None)."""
        n, _, why = self._command("violations").partition(" ")
        return int(n), why or None

    def request(self, i):
        """The i-th request's body (0 first) as parsed JSON."""
        return json.loads(self._command(f"request {i}"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Taskora:
    """The built taskorad on a fresh database, with every plugin and the source tree's app."""

    def __init__(self, builddir, srcdir, work, ai_url):
        self.builddir, self.srcdir, self.work = builddir, srcdir, work
        self.admin_url = os.environ["TASKORA_TEST_DATABASE_URL"]
        self.db = f"taskora_browser_{os.getpid()}"
        self.db_url = _url_with_db(self.admin_url, self.db)
        self.log_path = os.path.join(work, "taskorad.log")
        self.config_path = os.path.join(work, "taskora.json")
        self.proc = None
        self.url = None
        self._psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        self._psql(f"CREATE DATABASE {self.db}")
        with open(self.config_path, "w") as f:
            json.dump(self.config(ai_url), f, indent=1)
        self._run([self.taskorad, "migrate", "-c", self.config_path], "taskorad migrate")

    @property
    def taskorad(self):
        return os.path.join(self.builddir, "taskorad")

    def config(self, ai_url):
        """The all-in-one config (as config/taskora.json) for this run."""
        b = self.builddir
        return {
            "app_id": "browser-test",
            "log": {"format": "text", "level": "info"},
            "plugin_dir": ":".join(f"{b}/plugins/{p}/.libs" for p in PLUGINS),
            "postgres": {"url": self.db_url, "pool_size": 4},
            "kafka": {"brokers": "embedded", "partitions": 2,
                      "consumer": {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500",
                                   "fetch.wait.max.ms": "10"}},
            "outbox": {"poll_ms": 100},
            "http": {"listen": "127.0.0.1:0"},
            "shutdown_timeout_ms": 10000,
            "drain_delay_ms": 0,
            "resiliency": {"retry": {"attempts": 2, "delay_ms": 100},
                           "circuit_breaker": {"failures": 50, "open_ms": 1000},
                           "timeout_ms": 20000},
            "plugins": [
                {"name": "api", "load": "http_api",
                 "config": {"jwt_secret": JWT_SECRET, "bcrypt_cost": 4, "ai_provider": "gemini",
                            "browser_home": "/app/"},
                 "consume": {"topics": ["task-events"], "group": "taskora-api-reminders"}},
                {"name": "gemini", "load": "ai_gemini",
                 "config": {"api_key": GEMINI_KEY, "base_url": ai_url, "model": GEMINI_MODEL,
                            "timeout_ms": 10000}},
                {"name": "realtime", "load": "realtime",
                 "consume": {"topics": ["task-events"], "broadcast": True}},
                # fires a reminder within ~0.5 s of its time
                {"name": "notifications", "load": "notifications",
                 "config": {"poll_ms": 200, "settle_ms": 200},
                 "consume": {"topics": ["task-events", "user-events"],
                             "group": "taskora-notifications-schedule"}},
                {"name": "analytics", "load": "analytics",
                 "consume": {"topics": ["task-events", "user-events", "chat-events"],
                             "group": "taskora-analytics"}},
                {"name": "webui", "load": "webui",
                 "config": {"root": os.path.join(self.srcdir, "plugins/webui/www")}},
            ],
        }

    def _psql(self, sql):
        self._run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.admin_url, "-c", sql], "psql")

    def _run(self, argv, what):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise HarnessError(f"{what} failed ({r.returncode}): {r.stdout}{r.stderr}")

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self, timeout=60):
        """Starts taskorad and waits until /ready answers 200."""
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.taskorad, "run", "-c", self.config_path],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        log.close()
        found = wait_until(lambda: self._listening() or self._exited(), timeout,
                           "taskorad to listen")
        if found == "exited":
            raise HarnessError(f"taskorad exited {self.proc.returncode}:\n{self.log_text()}")
        self.url = found
        wait_until(lambda: self._ready() or self._exited(), timeout, "taskorad's /ready")
        if self.proc.poll() is not None:
            raise HarnessError(f"taskorad exited {self.proc.returncode}:\n{self.log_text()}")

    def _listening(self):
        m = re.search(r"http server listening listen=\S+ url=(http://\S+)", self.log_text())
        return m.group(1) if m else None

    def _exited(self):
        return "exited" if self.proc.poll() is not None else None

    def _ready(self):
        try:
            return http("GET", self.url + "/ready", timeout=5).status == 200
        except OSError:
            return False

    def stop(self):
        """SIGINT (a stop without the drain delay); returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def drop_database(self):
        try:
            self._psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        except (HarnessError, OSError, subprocess.TimeoutExpired) as e:
            print(f"warning: {e}", file=sys.stderr)


def wait_until(fn, timeout, what):
    """Polls fn() (every 50 ms) until it returns something true, and returns that; raises
    TimeoutError naming `what` after `timeout` seconds. For conditions outside the browser."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(None, timeout, poll_frequency=0.05).until(lambda _: fn())
    except TimeoutException:
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}") from None


class ConsoleError(AssertionError):
    pass


class Harness:
    """The stack and the browser. Attributes once entered:
        url        taskorad's base URL, "http://127.0.0.1:PORT"
        driver     the Selenium WebDriver (Chromium)
        fake_ai    the FakeAI server the gemini provider talks to
        taskora    the Taskora process (log_text(), db_url, stop())
    """

    def __init__(self, timeout=180):
        self.builddir = os.path.abspath(os.environ.get("TK_BUILDDIR", "."))
        self.srcdir = os.path.abspath(os.environ.get("TK_SRCDIR", ".."))
        self.timeout = timeout
        self.work = tempfile.mkdtemp(prefix="taskora-browser-")
        self.driver = self.fake_ai = self.taskora = None
        self.console = []  # every console entry so far: {"level", "message", "step"}
        self.failed = False
        self.current_step = None

    # ---- set-up and tear-down ------------------------------------------------------------

    def __enter__(self):
        def on_alarm(signum, frame):
            raise TimeoutError(f"the browser tests ran past their {self.timeout} s")

        def on_term(signum, frame):
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGALRM, on_alarm)
        signal.signal(signal.SIGTERM, on_term)
        signal.alarm(self.timeout)
        try:
            program = os.path.join(self.builddir, "tests/fake_ai_server")
            self.fake_ai = FakeAI(program, os.path.join(self.work, "fake_ai.log"))
            self.taskora = Taskora(self.builddir, self.srcdir, self.work, self.fake_ai.url)
            self.taskora.start()
            self.url = self.taskora.url
            self.driver = self._start_browser()
        except BaseException:
            self.failed = True
            self._save_logs()
            self.close()
            raise
        return self

    def __exit__(self, kind, value, tb):
        if kind is not None:
            self.failed = True
        try:
            if self.fake_ai and kind is None:
                n, why = self.fake_ai.violations()
                if n:
                    self.failed = True
                    raise AssertionError(f"the fake AI server refused {n} malformed request(s);"
                                         f" the last because: {why}")
        finally:
            status = self.close()
            if self.failed:
                self._save_logs()
        if kind is None and status not in (0, None):
            self._save_logs()
            raise AssertionError(f"taskorad exited {status} when stopped")
        return False

    def close(self):
        """Stops everything (each step on its own, so one failure does not leave the others);
        returns taskorad's exit status."""
        signal.alarm(0)
        status = None
        if self.driver:
            with contextlib.suppress(Exception):
                self.driver.quit()
            self.driver = None
        if self.taskora:
            status = self.taskora.stop()
            self.taskora.drop_database()
        if self.fake_ai:
            self.fake_ai.stop()
        return status

    def _save_logs(self):
        """Keeps taskorad's log (and the fake server's) in the build folder after a failure."""
        out = os.path.join(self.builddir, "tests")
        for name in ("taskorad.log", "fake_ai.log"):
            src = os.path.join(self.work, name)
            if os.path.exists(src):
                dst = os.path.join(out, "browser-failure-" + name)
                shutil.copy(src, dst)
                print(f"  {name}: {dst}", file=sys.stderr)

    def cleanup_workdir(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def _start_browser(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--no-default-browser-check",
                  "--window-size=1280,900", "--lang=en-US",
                  "--user-data-dir=" + os.path.join(self.work, "profile")):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(CHROMEDRIVER, log_path=os.path.join(self.work, "chromedriver.log"),
                          popen_kw={"preexec_fn": _die_with_parent})
        driver = webdriver.Chrome(service=service, options=opts)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        return driver

    # ---- steps ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name, allow_console=()):
        """One step of a flow. Afterwards, any console message of level SEVERE (a console.error,
        an uncaught exception, a CSP violation, a failed load) fails it, unless it matches one
        of the regular expressions in allow_console (e.g. r"status of 401" for a login that is
        meant to fail). On a failure: a screenshot, the page's HTML and the console so far go
        to TK_BUILDDIR/tests/browser-failure-<step>.{png,html,log}, then the error goes on."""
        self.current_step = name
        print(f"-- {name}", file=sys.stderr)
        started = time.monotonic()
        try:
            yield self
            self.check_console(allow_console)
        except BaseException:
            self.failed = True
            self._collect_console()
            self._save_failure(name)
            raise
        finally:
            self.current_step = None
        print(f"   ok ({time.monotonic() - started:.1f} s)", file=sys.stderr)

    def _collect_console(self):
        if not self.driver:
            return []
        try:
            entries = self.driver.get_log("browser")
        except Exception:  # the browser is gone
            return []
        for e in entries:
            e["step"] = self.current_step
        self.console.extend(entries)
        return entries

    def check_console(self, allow=()):
        """Fails on SEVERE console messages since the last look (see step)."""
        bad = [e for e in self._collect_console() if e.get("level") == "SEVERE" and
               not any(re.search(p, e.get("message", "")) for p in allow)]
        if bad:
            raise ConsoleError("console errors:\n" +
                               "\n".join(f"  {e['level']}: {e['message']}" for e in bad))

    def _save_failure(self, name):
        base = os.path.join(self.builddir, "tests",
                            "browser-failure-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-"))
        if self.driver:
            with contextlib.suppress(Exception):
                self.driver.save_screenshot(base + ".png")
            with contextlib.suppress(Exception):
                with open(base + ".html", "w") as f:
                    f.write(self.driver.page_source)
        with open(base + ".log", "w") as f:
            url = None
            with contextlib.suppress(Exception):
                url = self.driver.current_url
            f.write(f"step: {name}\nurl: {url}\n\nconsole:\n")
            for e in self.console:
                f.write(f"  [{e.get('step')}] {e.get('level')}: {e.get('message')}\n")
        print(f"  step failed: {base}.png, .html, .log", file=sys.stderr)

    # ---- the browser ---------------------------------------------------------------------

    def open(self, path):
        """Loads a page of the server, e.g. open("/app/")."""
        self.driver.get(self.url + path)

    def wait_for(self, condition, timeout=10, what=None):
        """Waits until condition(driver) returns something true, and returns that (a Selenium
        expected_conditions object works too). No sleeps: it polls every 100 ms."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)
        except TimeoutException:
            raise TimeoutError(f"timed out after {timeout} s waiting for "
                               f"{what or getattr(condition, '__name__', 'a condition')}") from None

    def find(self, css, timeout=10):
        """The visible element matching a CSS selector, once there is one."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        return self.wait_for(EC.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout,
                             f"a visible {css}")

    def click(self, css, timeout=10):
        """Clicks the element matching css once it is clickable."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        self.wait_for(EC.element_to_be_clickable((By.CSS_SELECTOR, css)), timeout,
                      f"a clickable {css}").click()

    def type(self, css, text, clear=True):
        """Types into the input matching css."""
        el = self.find(css)
        if clear:
            el.clear()
        el.send_keys(text)
        return el

    # ---- the API -------------------------------------------------------------------------

    def api(self, method, path, body=None, token=None, headers=None):
        """A request to taskorad (JSON in and out); returns a Response, never raises on 4xx."""
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        return http(method, self.url + path, body, hdrs)

    def register(self, email, password="browser-pw-1", name="Browser Tester"):
        """Registers and logs in a user through the API; returns (user id, access token)."""
        r = self.api("POST", "/api/auth/register",
                     {"email": email, "name": name, "password": password})
        assert r.status == 201, f"register: {r}"
        uid = r.json["id"]
        r = self.api("POST", "/api/auth/login", {"email": email, "password": password})
        assert r.status == 200, f"login: {r}"
        return uid, r.json["access_token"]


def main(flow, timeout=180):
    """Runs flow(harness) with the prerequisites checked: the exit status of the test."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        skip_or_fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing (Debian: chromium chromium-driver)")
    if importlib.util.find_spec("selenium") is None:
        skip_or_fail("Selenium is missing (Debian: python3-selenium)")
    if not os.environ.get("TASKORA_TEST_DATABASE_URL"):
        skip_or_fail("TASKORA_TEST_DATABASE_URL is not set (scripts/test starts a PostgreSQL)")
    h = Harness(timeout)
    try:
        with h:
            flow(h)
    except HarnessError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return HARD_ERROR
    except Exception as e:  # a failed assertion, a wait that timed out, the browser gone...
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        h.cleanup_workdir()
    print("PASS: browser tests", file=sys.stderr)
    return 0
