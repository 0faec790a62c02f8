"""The gateway's /status page in headless Chromium, over the DevTools
protocol: one page session sees both providers healthy, then, once the
primary fails until it is ejected, sees it ejected with the time left and
a fallback from the primary to the backup.

Reads UNDERSTUDY_URL (the gateway), MOCK_PRIMARY (the primary mock) and
STATUS_WORK (a scratch folder). Exits non-zero, saying why, on any failure."""
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websocket

GATEWAY = os.environ["UNDERSTUDY_URL"]
PRIMARY = os.environ["MOCK_PRIMARY"]
WORK = os.environ.get("STATUS_WORK") or tempfile.gettempdir()
POLL = 0.2  # seconds between two looks at the page
LIMIT = 30.0  # seconds any one wait may take


class Failure(Exception):
    pass


def wait_for(what, check, limit=LIMIT):
    """Polls `check` until it returns something true; fails after `limit`."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(POLL)
    raise Failure(f"timed out after {limit:.0f} s waiting for {what}")


def start_chromium(profile):
    args = [
        shutil.which("chromium") or "chromium",
        "--headless=new",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "about:blank",
    ]
    if os.geteuid() == 0:
        # Chromium refuses to run as root inside its sandbox.
        args.insert(1, "--no-sandbox")
    log = open(os.path.join(profile, "..", "chromium.log"), "wb")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def devtools_port(profile, browser):
    path = os.path.join(profile, "DevToolsActivePort")

    def read():
        if browser.poll() is not None:
            raise Failure(f"chromium exited with status {browser.returncode} before it listened")
        try:
            with open(path) as file:
                first = file.readline().strip()
            return int(first) if first else None
        except (FileNotFoundError, ValueError):
            return None

    return wait_for("chromium's DevToolsActivePort file", read)


class Session:
    """One DevTools websocket: commands in, their results out, events skipped."""

    def __init__(self, url):
        self.socket = websocket.create_connection(url, timeout=LIMIT, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method, **params):
        id = next(self.ids)
        self.socket.send(json.dumps({"id": id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") != id:
                continue
            if "error" in message:
                raise Failure(f"{method} failed: {message['error']}")
            return message["result"]

    def close(self):
        self.socket.close()


def open_page(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=LIMIT) as answer:
        browser_url = json.load(answer)["webSocketDebuggerUrl"]
    browser = Session(browser_url)
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    browser.close()
    page = Session(f"ws://127.0.0.1:{port}/devtools/page/{target}")
    page.call("Page.enable")
    page.call("Page.navigate", url=GATEWAY + "/status")
    return page


def text(page):
    result = page.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''", returnByValue=True)
    if "exceptionDetails" in result:
        raise Failure(f"the page's text could not be read: {result['exceptionDetails']}")
    return result["result"].get("value", "")


def rows(page_text):
    """Each table row of the rendered page, as its cells."""
    return [line.split("\t") for line in page_text.splitlines() if "\t" in line]


def provider_row(page_text, name):
    for cells in rows(page_text):
        if cells[0].strip() == name and len(cells) >= 7:
            return cells
    return None


def state_of(page_text, name):
    cells = provider_row(page_text, name)
    return cells[1].strip() if cells else None


def post(url, body, headers=None):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=LIMIT) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def status_json():
    with urllib.request.urlopen(GATEWAY + "/status.json", timeout=LIMIT) as answer:
        return json.load(answer)


def eject_primary():
    status, _ = post(PRIMARY + "/__mock/faults", ["status:503"])
    if status != 200:
        raise Failure(f"the primary mock refused the fault: HTTP {status}")
    for sent in range(1, 51):
        status, body = post(
            GATEWAY + "/v1/chat/completions",
            {"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            {"authorization": "Bearer caller-token"},
        )
        if status != 200:
            raise Failure(f"request {sent} through the gateway failed (HTTP {status}): {body[:300]!r}")
        states = {p["name"]: p["state"] for p in status_json()["providers"]}
        if states.get("primary") == "ejected":
            print(f"primary ejected after {sent} requests")
            return
    raise Failure("the primary was not ejected after 50 failing requests")


def main():
    profile = tempfile.mkdtemp(prefix="chromium-", dir=WORK)
    browser = start_chromium(profile)
    page = None
    seen = ""
    try:
        port = devtools_port(profile, browser)
        page = open_page(port)

        def healthy():
            nonlocal seen
            seen = text(page)
            return state_of(seen, "primary") == "healthy" and state_of(seen, "backup") == "healthy"

        wait_for("both providers to show as healthy on /status", healthy)
        if "none since the gateway started" not in seen:
            raise Failure("the page lists fallbacks before any happened")
        print("the page shows primary and backup healthy")

        eject_primary()

        def ejected():
            nonlocal seen
            seen = text(page)
            state = state_of(seen, "primary") or ""
            fallback = any(
                len(cells) >= 5 and cells[1:4] == ["chat", "primary", "backup"] and cells[4].strip() == "overloaded"
                for cells in rows(seen)
            )
            return state.startswith("ejected") and "left" in state and fallback

        wait_for("the same page to show the primary ejected and a fallback from primary to backup", ejected)
        if state_of(seen, "backup") != "healthy":
            raise Failure(f"the backup shows as {state_of(seen, 'backup')!r}, not healthy")
        print("the page shows the primary ejected, its time left, and the fallback to backup")
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        print("--- the page's text when it failed ---", file=sys.stderr)
        print(seen or "(nothing rendered)", file=sys.stderr)
        return 1
    finally:
        if page is not None:
            page.close()
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
