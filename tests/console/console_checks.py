"""The console in a real browser: Debian's Chromium driven by Playwright against the local host.

Run by tests/console/run.sh, which starts the host and sets the environment:
CONSOLE_BASE (the app's URL), JWT_SECRET, AXE_JS (axe-core's axe.min.js), SCREENSHOTS (a
folder), CHROMIUM (default /usr/bin/chromium), LEAK_ALERT_KEY and LEAK_ALERT_KEY_ID (the P-256
key, PEM, that signs leak alerts as GitHub would, and its identifier; the host has its public
half as github_secret_scanning_keys). Each check runs in a fresh browser context as a
user of its own, prints `PASS name` or `FAIL name: why`, and a failure in one does not stop the
others. Every state the checks pass through is also checked by axe-core (zero serious or
critical violations; zero of any impact for the states of a roll, of the account-switch
question and of Back) and most are saved as screenshots. The checks marked
`back_forward_cache=True` run in a second browser with the back-forward cache on.
"""

import base64
import calendar
import hashlib
import hmac
import http.client
import json
import os
import re
import sys
import time
import traceback
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import expect, sync_playwright

BASE = os.environ["CONSOLE_BASE"].rstrip("/")
JWT_SECRET = os.environ["JWT_SECRET"]
AXE_SOURCE = open(os.environ["AXE_JS"], encoding="utf-8").read()
SCREENSHOTS = os.environ["SCREENSHOTS"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LEAK_ALERT_KEY = os.environ["LEAK_ALERT_KEY"]
LEAK_ALERT_KEY_ID = os.environ["LEAK_ALERT_KEY_ID"]
TOKEN_STORAGE = "api-keys.console.token"
KEY_PATTERN = re.compile(r"^ak_[0-9A-Za-z]{49}$")

CHECKS = []
AXE_STATES = []  # (state, violations by impact)
CONTEXT_OPTIONS = {}  # check name -> extra options of its browser context
BACK_FORWARD_CACHE = set()  # names of the checks that run in a browser with the cache on


def check(function=None, back_forward_cache=False, **context_options):
    """Registers a check; `@check(timezone_id=...)` runs it in a context with those options,
    `@check(back_forward_cache=True)` in a browser whose back-forward cache is on, as it is in
    everyone's Chrome (Playwright turns it off by default)."""
    def register(function):
        CHECKS.append(function)
        CONTEXT_OPTIONS[function.__name__] = context_options
        if back_forward_cache:
            BACK_FORWARD_CACHE.add(function.__name__)
        return function
    return register(function) if function is not None else register


# ---- The API, from outside the browser ---------------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def make_jwt(sub, expires_in=3600, secret=JWT_SECRET):
    """An HS256 token for `sub`, as the README mints one."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"sub": sub, "exp": int(time.time()) + expires_in}).encode())
    signature = b64url(hmac.new(secret.encode(), header + b"." + claims, hashlib.sha256).digest())
    return (header + b"." + claims + b"." + signature).decode()


def raw(method, path, headers=None, body=None):
    """One request, redirects not followed: (status, lower-case headers, body bytes)."""
    url = urllib.parse.urlsplit(BASE)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def api(method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, _, data = raw(method, path, headers, None if body is None else json.dumps(body))
    try:
        return status, json.loads(data)
    except ValueError:
        return status, None


def create_key(user, name, scopes=("read",)):
    return create_key_with(user, {"name": name, "scopes": list(scopes)})


def create_key_with(user, request):
    status, body = api("POST", "/v1/keys.create", make_jwt(user), request)
    assert status == 201, (status, body)
    return body


def verify_status(key, scope=None):
    body = {"key": key} if scope is None else {"key": key, "scope": scope}
    return api("POST", "/v1/keys.verify", body=body)


def forward_auth_status(key, scope):
    """Verify as a gateway asks: the key in X-API-Key, the scope in the query."""
    status, _, data = raw("GET", f"/v1/keys.verify?scope={urllib.parse.quote(scope)}", {"X-API-Key": key})
    return status, json.loads(data)


def leak_alert(*matches):
    """Reports `matches` ((key, url, source) each) as GitHub's secret scanning does: a JSON array
    POSTed to /v1/keys.leaked, signed (ECDSA P-256, SHA-256, base64 DER) with the run's stand-in
    for GitHub's key. Checks that every key was revoked (labelled a true positive)."""
    body = json.dumps([{"token": key, "type": "api_keys_key", "url": url, "source": source}
                       for key, url, source in matches]).encode()
    with open(LEAK_ALERT_KEY, "rb") as pem:
        signer = serialization.load_pem_private_key(pem.read(), password=None)
    signature = base64.b64encode(signer.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    status, _, data = raw("POST", "/v1/keys.leaked", {
        "Content-Type": "application/json",
        "Github-Public-Key-Identifier": LEAK_ALERT_KEY_ID,
        "Github-Public-Key-Signature": signature,
    }, body)
    assert status == 200, (status, data)
    labels = [match["label"] for match in json.loads(data)]
    assert labels == ["true_positive"] * len(matches), labels


def revoke_by_holder(key):
    """Revokes `key` as anyone holding it may (RFC 7009): the key in a form, no JWT."""
    status, _, data = raw("POST", "/v1/keys.revoke", {"Content-Type": "application/x-www-form-urlencoded"},
                          urllib.parse.urlencode({"token": key}))
    assert (status, json.loads(data)) == (200, {}), (status, data)


def listed_key(user, key_id):
    status, listed = api("GET", "/v1/keys.list", make_jwt(user))
    assert status == 200, (status, listed)
    return next(k for k in listed["keys"] if k["id"] == key_id)


_users = 0


def new_user(name):
    global _users
    _users += 1
    return f"{name}-{os.getpid()}-{_users}@example.com"


# ---- The browser -------------------------------------------------------------------------------


class Watch:
    """What a page did that no check should let pass: script errors, CSP or Trusted Types
    violations (console errors), requests to any other origin."""

    current = None  # the Watch of the running check

    def __init__(self, page):
        self.problems = []
        self.expected = []
        Watch.current = self
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self.console)
        page.on("request", self.request)

    def console(self, message):
        # The browser logs every 4xx the checks provoke on purpose; those are not problems.
        if message.type == "error" and "Failed to load resource" not in message.text:
            if not any(text in message.text for text in self.expected):
                self.problems.append(f"console error: {message.text}")

    def expect(self, text):
        """A console error the running check provokes on purpose."""
        self.expected.append(text)

    def request(self, request):
        if not request.url.startswith(BASE + "/"):
            self.problems.append(f"request to another origin: {request.url}")


def axe(page, state, any_impact=False):
    """Runs axe-core on the page as it is; fails on any serious or critical violation, or with
    `any_impact` on any violation at all."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    violations = page.evaluate(
        """async () => (await axe.run(document, { resultTypes: ["violations"] })).violations
            .map(v => ({ id: v.id, impact: v.impact, targets: v.nodes.map(n => n.target.join(" ")) }))"""
    )
    AXE_STATES.append((state, violations))
    bad = [v for v in violations if any_impact or v["impact"] in ("serious", "critical")]
    assert not bad, f"axe, {state}: {bad}"


def shot(page, name, full_page=False):
    page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=full_page)


def sign_in(page, user, token=None):
    """Opens the console as the product would: the token in the URL fragment."""
    page.goto(f"{BASE}/console#token={token or make_jwt(user)}")
    expect(page.get_by_role("heading", name="API Keys", exact=True)).to_be_visible()
    expect(page.locator("#count")).to_have_text(re.compile(r"^\d+ of \d+ keys$"))


def expect_signed_out(page):
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Management token")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_STORAGE}')") is None


def key_heading(page, name):
    return page.locator("#keys").get_by_role("heading", name=name, exact=True)


def key_item(page, name):
    return page.locator("#keys > li").filter(has=page.get_by_role("heading", name=name, exact=True))


def fact(item, label):
    """The value a key's row shows for `label` ("Status", "Expires", ...)."""
    return item.locator(f"xpath=.//dt[normalize-space()='{label}']/following-sibling::dd[1]")


def open_key_dialog(page, action, name, title):
    """Clicks the key's "<action> <name>" button; answers the dialog `title` it opened."""
    page.get_by_role("button", name=f"{action} {name}", exact=True).click()
    dialog = page.get_by_role("dialog", name=title)
    expect(dialog).to_be_visible()
    return dialog


def post_on_click(page, button, path):
    """Clicks `button`; answers the JSON body the page then POSTed to `path`."""
    with page.expect_request(lambda r: r.url == f"{BASE}{path}" and r.method == "POST") as sent:
        button.click()
    return sent.value.post_data_json


def open_edit(page, name):
    return open_key_dialog(page, "Edit", name, "Edit key")


def save_edit(page, dialog):
    """Clicks Save; answers the JSON body the page sent to /v1/keys.update."""
    return post_on_click(page, dialog.get_by_role("button", name="Save"), "/v1/keys.update")


def open_roll(page, name):
    return open_key_dialog(page, "Roll", name, "Roll API key")


def submit_roll(page, dialog):
    """Clicks Roll key; answers the JSON body the page sent to /v1/keys.roll."""
    return post_on_click(page, dialog.get_by_role("button", name="Roll key"), "/v1/keys.roll")


def roll_key(user, key_id, grace_seconds):
    status, body = api("POST", "/v1/keys.roll", make_jwt(user), {"id": key_id, "grace_seconds": grace_seconds})
    assert status == 201, (status, body)
    return body


def epoch(rfc3339):
    """Seconds since the epoch of an RFC 3339 UTC timestamp as the API writes them."""
    return calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


def generate_in_ui(page, name, scopes):
    page.get_by_role("button", name="Generate API Key").click()
    dialog = page.get_by_role("dialog", name="Generate API Key")
    dialog.get_by_label("Name").fill(name)
    for scope in scopes:
        dialog.get_by_role("checkbox", name=scope, exact=True).check()
    dialog.get_by_role("button", name="Create").click()
    return dialog


def read_secret(page):
    dialog = page.get_by_role("dialog", name="Your new API key")
    expect(dialog).to_be_visible()
    secret = page.locator("#secret-value").inner_text().strip()
    assert KEY_PATTERN.match(secret), secret
    return dialog, secret


def secret_anywhere(page, secret):
    """Whether the secret is still in the page: markup, form values, text, storage."""
    if secret in page.content():
        return True
    return page.evaluate(
        """secret => [...document.querySelectorAll("input, textarea")].some(e => e.value.includes(secret))
            || document.body.innerText.includes(secret)
            || JSON.stringify({ ...sessionStorage }).includes(secret)
            || JSON.stringify({ ...localStorage }).includes(secret)""",
        secret,
    )


def expect_focus_on(page, name, timeout=5.0):
    """Waits until focus is on the element named `name`: a dialog's `close` event, which moves
    focus back, comes a task after the dialog is hidden (on real Spin the check came first)."""
    deadline = time.time() + timeout
    while (focused := focused_name(page)) != name and time.time() < deadline:
        time.sleep(0.02)
    assert focused == name, focused


def focused_name(page):
    """The accessible name of the focused element, as a person with a screen reader hears it."""
    return page.evaluate(
        """() => {
            const e = document.activeElement;
            if (!e) return "";
            if (e.getAttribute("aria-label")) return e.getAttribute("aria-label");
            if (e.labels && e.labels.length) return e.labels[0].textContent.trim();
            return e.textContent.trim();
        }"""
    )


def assert_focus_ring(page, name):
    """The focused control shows a focus ring."""
    outline = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; }"
    )
    assert outline[0] != "none" and outline[1] != "0px", f"{name}: no visible focus {outline}"


def tab_to(page, name, most=40):
    """Presses Tab until the control named `name` has focus, and checks it shows a focus ring."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if focused_name(page) == name:
            assert_focus_ring(page, name)
            return
    raise AssertionError(f"Tab never reached {name!r} (last: {focused_name(page)!r})")


def open_by_keyboard(page, button, dialog_name):
    """Tabs to `button` and presses Enter; answers the dialog it opened, checked visible."""
    tab_to(page, button)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=dialog_name)
    expect(dialog).to_be_visible()
    return dialog


def escape_back_to(page, dialog, button):
    """Presses Escape: `dialog` closes and focus is back on `button`, which opened it."""
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect_focus_on(page, button)


# ---- The checks --------------------------------------------------------------------------------


@check
def security_headers_and_csp(page):
    for path in ("/console", "/console/console.js", "/console/console.css", "/", "/console/nope"):
        status, headers, _ = raw("GET", path)
        csp = headers.get("content-security-policy", "")
        for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                          "connect-src 'self'", "frame-ancestors 'none'",
                          "require-trusted-types-for 'script'"):
            assert directive in csp, (path, csp)
        assert "unsafe" not in csp, (path, csp)
        assert headers.get("x-content-type-options") == "nosniff", (path, headers)
        assert headers.get("referrer-policy") == "no-referrer", (path, headers)
    status, headers, _ = raw("GET", "/")
    assert (status, headers.get("location")) == (302, "/console"), (status, headers)
    assert raw("GET", "/console/nope")[0] == 404
    status, headers, _ = raw("POST", "/console", body=b"x")
    assert (status, headers.get("allow")) == (405, "GET, HEAD"), (status, headers)
    # In the browser: the policy is in force, and HTML from a string is refused outright.
    Watch.current.expect("requires 'TrustedHTML' assignment")
    page.goto(f"{BASE}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.url == f"{BASE}/console", page.url
    refused = page.evaluate(
        """() => { try { document.createElement("div").innerHTML = "<b>x</b>"; return false; }
                   catch (e) { return e instanceof TypeError; } }"""
    )
    assert refused, "Trusted Types let innerHTML take a string"


@check
def token_from_the_fragment_signs_in_and_leaves_the_address_bar(page):
    user = new_user("fragment")
    token = make_jwt(user)
    sign_in(page, user, token)
    assert page.url == f"{BASE}/console", f"token still in the address bar: {page.url}"
    assert "token" not in page.evaluate("location.href")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_STORAGE}')") == token
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    expect(page.locator("#account-sub")).to_have_text(user)
    expect(page.locator("#account-expiry")).to_contain_text("Token expires")
    expect(page.locator("#count")).to_have_text("0 of 20 keys")
    expect(page.get_by_text("No API keys yet")).to_be_visible()
    shot(page, "empty")
    axe(page, "signed in, no keys (empty state)")
    # A reload keeps the session (sessionStorage), without the token coming back to the URL.
    page.reload()
    expect(page.locator("#account-sub")).to_have_text(user)
    assert page.url == f"{BASE}/console"


@check
def sign_in_by_pasting_a_token_and_sign_out(page):
    user = new_user("paste")
    create_key(user, "pasted user's key")
    page.goto(f"{BASE}/console")
    expect_signed_out(page)
    shot(page, "sign-in")
    axe(page, "sign-in")
    page.get_by_label("Management token").fill(make_jwt(user))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-sub")).to_have_text(user)
    expect(key_heading(page, "pasted user's key")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect_signed_out(page)
    expect(page.get_by_role("alert")).to_have_text("You signed out.")
    assert page.locator("#keys li").count() == 0, "the list stays in the page after signing out"
    page.get_by_label("Management token").fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-message")).to_contain_text("not a management token")


def follow_link(page, token, same_page=False):
    """Opens the console from a link carrying `token` in its fragment, as a product (or anyone)
    can make: from another page in this tab, or, `same_page`, while the console is open (only
    the fragment changes, the page stays)."""
    if not same_page:
        page.goto("about:blank")
    page.goto(f"{BASE}/console#token={token}")


def switch_dialog(page):
    return page.get_by_role("dialog", name="Switch account?")


def open_dialogs(page):
    return page.evaluate("[...document.querySelectorAll('dialog')].filter(d => d.open).map(d => d.id)")


@check
def a_link_for_another_account_asks_first_and_staying_keeps_the_session(page):
    victim = new_user("signed-in")
    other = new_user("link-maker")
    create_key(victim, "my own key")
    create_key(other, "the link maker's key")
    victim_token, other_token = make_jwt(victim), make_jwt(other)
    sent = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")))
    sign_in(page, victim, victim_token)
    for same_page in (False, True):
        follow_link(page, other_token, same_page)
        dialog = switch_dialog(page)
        expect(dialog).to_be_visible()
        assert page.url == f"{BASE}/console", f"the link's token is still in the address bar: {page.url}"
        expect(page.locator("#switch-current")).to_have_text(victim)
        expect(page.locator("#switch-new")).to_have_text(other)
        expect(dialog).to_have_accessible_description(re.compile(
            rf"^You are signed in as {re.escape(victim)}\. The link you opened would sign you in as "
            rf"{re.escape(other)} instead\. Switch only if you expected this link\."))
        expect(dialog.get_by_role("button", name="Stay signed in")).to_be_focused()
        assert_focus_ring(page, "Stay signed in")
        # Behind the question, the page is still the signed-in person's.
        expect(page.locator("#account-sub")).to_have_text(victim)
        expect(key_heading(page, "my own key")).to_be_visible()
        if same_page:
            shot(page, "switch-account")
            axe(page, "switch account, link followed while open", any_impact=True)
            dialog.get_by_role("button", name="Stay signed in").click()
        else:
            axe(page, "switch account, page opened from a link", any_impact=True)
            page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(page.locator("#keys-status")).to_have_text(
            f"You are still signed in as {victim}; the link's token was not used.")
        expect_focus_on(page, "API Keys")
        expect(page.locator("#account-sub")).to_have_text(victim)
        expect(key_heading(page, "my own key")).to_be_visible()
        expect(key_heading(page, "the link maker's key")).to_have_count(0)
        assert page.evaluate(f"sessionStorage.getItem('{TOKEN_STORAGE}')") == victim_token
    axe(page, "stayed signed in after a link for another account", any_impact=True)
    # A key generated now is the signed-in person's, and the link's token was never used.
    generate_in_ui(page, "made after staying", ["read"])
    secret_dialog, secret = read_secret(page)
    secret_dialog.get_by_role("button", name="Done").click()
    assert verify_status(secret)[1]["user_id"] == victim
    assert f"Bearer {other_token}" not in sent, "the link's token was sent to the API"
    assert not secret_anywhere(page, other_token), "the link's token stays in the page"
    # A link whose token is no JWT at all changes nothing either, and says so.
    follow_link(page, "not-a-token", same_page=True)
    expect(page.locator("#keys-error")).to_have_text(
        f"The link's token was not used: it is not a management token. You are still signed in as {victim}.")
    assert open_dialogs(page) == [] and page.url == f"{BASE}/console"
    expect(page.locator("#account-sub")).to_have_text(victim)


@check
def switching_to_a_links_account_when_confirmed(page):
    first, second = new_user("first-account"), new_user("second-account")
    first_key = create_key(first, "first account's key")
    create_key(second, "second account's key")
    first_token, second_token = make_jwt(first), make_jwt(second)
    sign_in(page, first, first_token)
    # By keyboard, the link followed while the page is open.
    follow_link(page, second_token, same_page=True)
    dialog = switch_dialog(page)
    expect(dialog).to_be_visible()
    tab_to(page, "Switch account")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#account-sub")).to_have_text(second)
    expect(key_heading(page, "second account's key")).to_be_visible()
    expect(history(page)).to_have_count(1)
    expect_focus_on(page, "API Keys")
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_STORAGE}')") == second_token
    assert page.url == f"{BASE}/console", page.url
    for text in (first, "first account's key", first_key["preview"], first_token):
        assert not secret_anywhere(page, text), f"{text!r} of the account left is still in the page"
    axe(page, "switched to the link's account", any_impact=True)
    # By mouse, the page opened from a link, on a phone.
    page.set_viewport_size({"width": 320, "height": 640})
    follow_link(page, first_token)
    expect(dialog).to_be_visible()
    expect(page.locator("#switch-current")).to_have_text(second)
    expect(page.locator("#switch-new")).to_have_text(first)
    widths = dialog.evaluate("d => [d.scrollWidth, d.clientWidth]")
    assert widths[0] <= widths[1], f"the switch dialog's content is wider than it: {widths}"
    for control in [dialog] + dialog.get_by_role("button").all():
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    shot(page, "narrow-switch-account")
    axe(page, "switch account at 320 px", any_impact=True)
    dialog.get_by_role("button", name="Switch account").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#account-sub")).to_have_text(first)
    expect(key_heading(page, "first account's key")).to_be_visible()
    expect(key_heading(page, "second account's key")).to_have_count(0)
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_STORAGE}')") == first_token


@check
def a_link_for_the_same_account_replaces_the_token_without_asking(page):
    user = new_user("fresher-token")
    create_key(user, "still mine")
    older, fresher, freshest = (make_jwt(user, expires_in=seconds) for seconds in (600, 7200, 10800))
    sign_in(page, user, older)
    # While the page is open: no question, and the API is called with the new token at once.
    with page.expect_request(f"{BASE}/v1/keys.list") as listed:
        follow_link(page, fresher, same_page=True)
    assert listed.value.headers["authorization"] == f"Bearer {fresher}"
    assert open_dialogs(page) == [], open_dialogs(page)
    assert page.url == f"{BASE}/console", page.url
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_STORAGE}')") == fresher
    expect(page.locator("#account-sub")).to_have_text(user)
    expect(key_heading(page, "still mine")).to_be_visible()
    # Opened from a link: the same.
    with page.expect_request(f"{BASE}/v1/keys.list") as listed:
        follow_link(page, freshest)
    assert listed.value.headers["authorization"] == f"Bearer {freshest}"
    expect(key_heading(page, "still mine")).to_be_visible()
    assert open_dialogs(page) == [], open_dialogs(page)
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_STORAGE}')") == freshest
    expect(page.locator("#keys-status")).to_have_text("")


@check
def generate_a_key_read_it_once_and_it_verifies(page):
    user = new_user("generate")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=BASE)
    sign_in(page, user)
    page.get_by_role("button", name="Generate API Key").click()
    dialog = page.get_by_role("dialog", name="Generate API Key")
    expect(dialog).to_be_visible()
    for scope in ("read", "write", "admin"):  # the server's allowed_scopes
        expect(dialog.get_by_role("checkbox", name=scope, exact=True)).not_to_be_checked()
    axe(page, "generate dialog")
    dialog.get_by_label("Name").fill("CI deploy")
    dialog.get_by_role("checkbox", name="read", exact=True).check()
    dialog.get_by_role("checkbox", name="write", exact=True).check()
    dialog.get_by_role("button", name="Create").click()
    secret_dialog, secret = read_secret(page)
    expect(secret_dialog).to_contain_text("will not be shown again")
    shot(page, "secret")
    axe(page, "dialog with the secret")
    secret_dialog.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    status, body = verify_status(secret, "write")
    assert status == 200 and body["valid"] is True, (status, body)
    assert (body["user_id"], body["name"], body["scopes"]) == (user, "CI deploy", ["read", "write"]), body
    secret_dialog.get_by_role("button", name="Done").click()
    expect(secret_dialog).to_be_hidden()
    expect_focus_on(page, "Generate API Key")
    expect(key_heading(page, "CI deploy")).to_be_visible()
    preview = f"ak_...{secret[-4:]}"
    expect(page.locator("#keys")).to_contain_text(preview)
    expect(page.locator("#count")).to_have_text("1 of 20 keys")
    assert not secret_anywhere(page, secret), "the secret is still in the page after Done"
    axe(page, "list with a key")


@check
def escape_also_forgets_the_secret(page):
    user = new_user("escape")
    sign_in(page, user)
    generate_in_ui(page, "closed with Escape", ["read"])
    dialog, secret = read_secret(page)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(key_heading(page, "closed with Escape")).to_be_visible()
    assert not secret_anywhere(page, secret), "the secret is still in the page after Escape"


def leave_with_a_secret_and_come_back(page, user, how):
    """Shows a new secret (`how`: "create" or "roll"), goes to another page and comes Back;
    checks that the secret is not in the page; answers whether the page was restored from the
    back-forward cache (rather than loaded again)."""
    if how == "create":
        generate_in_ui(page, "created then left", ["read"])
    else:
        submit_roll(page, open_roll(page, "rolled then left"))
    _, secret = read_secret(page)
    page.evaluate("window.__sameDocument = true")
    page.goto(f"{BASE}/console/icon.svg")  # any other page; this one is of the same origin
    page.go_back(wait_until="commit")  # a restored page fires no load event
    expect(page.locator("#account-sub")).to_have_text(user)
    expect(page.get_by_role("dialog", name="Your new API key")).to_be_hidden()
    assert not secret_anywhere(page, secret), f"Back brought the secret of a {how} back"
    assert verify_status(secret)[0] == 200, "the key itself should be unharmed"
    return page.evaluate("window.__sameDocument === true")


@check(back_forward_cache=True)
def going_back_to_the_page_brings_no_secret_back(page):
    """Left with a new key's secret on screen, then Back: the secret is not in the page, whether
    the browser loads it again or restores it from its back-forward cache."""
    _, headers, _ = raw("GET", "/console")
    assert headers.get("cache-control") == "no-store", headers
    user = new_user("back")
    create_key(user, "rolled then left")
    sign_in(page, user)
    # As served: this Chromium keeps no page served no-store that has fetched no-store answers.
    leave_with_a_secret_and_come_back(page, user, "create")
    # Other Chrome versions keep even those: as they would, with the header taken off on the way.
    def without_no_store(route):
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "cache-control"}
        route.fulfill(response=response, headers=headers)
    page.route(f"{BASE}/console", without_no_store)
    page.reload()
    expect(page.locator("#account-sub")).to_have_text(user)
    for how in ("create", "roll"):
        assert leave_with_a_secret_and_come_back(page, user, how), \
            "the page was loaded again, not restored from the back-forward cache: nothing was tested"
        expect(page.locator("#keys-status")).to_have_text(
            "The new key was hidden when you left this page: it is shown only once. "
            "If you did not copy it, roll the key to get a new secret.")
        axe(page, f"restored by Back after leaving with the secret of a {how}", any_impact=True)
    expect(page.locator("#count")).to_have_text("3 of 20 keys")


@check
def delete_asks_for_confirmation_then_the_key_stops_verifying(page):
    user = new_user("delete")
    kept = create_key(user, "keep me")
    doomed = create_key(user, "remove me", ["read", "admin"])
    sign_in(page, user)
    expect(page.locator("#count")).to_have_text("2 of 20 keys")
    page.get_by_role("button", name="Delete remove me", exact=True).click()
    dialog = page.get_by_role("dialog", name="Delete API key")
    expect(dialog).to_contain_text("“remove me”")
    shot(page, "confirm-delete")
    axe(page, "delete confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert verify_status(doomed["key"])[0] == 200, "cancel deleted the key"
    expect(key_heading(page, "remove me")).to_be_visible()
    page.get_by_role("button", name="Delete remove me", exact=True).click()
    dialog.get_by_role("button", name="Delete key").click()
    expect(dialog).to_be_hidden()
    expect(key_heading(page, "remove me")).to_have_count(0)
    expect(page.locator("#keys-status")).to_have_text("Deleted “remove me”.")
    expect(page.locator("#count")).to_have_text("1 of 20 keys")
    assert verify_status(doomed["key"])[0] == 401, "a deleted key still verifies"
    assert verify_status(kept["key"])[0] == 200, "the other key was deleted too"


@check
def at_the_limit_generate_is_disabled_and_says_why(page):
    user = new_user("full")
    for i in range(20):
        create_key(user, f"key {i + 1}")
    sign_in(page, user)
    expect(page.locator("#count")).to_have_text("20 of 20 keys")
    button = page.get_by_role("button", name="Generate API Key")
    expect(button).to_be_disabled()
    reason = "You have 20 keys, the most allowed (20). Delete a key to generate a new one."
    expect(page.locator("#limit-note")).to_have_text(reason)
    expect(button).to_have_accessible_description(reason)
    shot(page, "limit", full_page=True)
    axe(page, "limit reached")


@check
def the_21st_key_is_refused_with_the_limits_message(page):
    user = new_user("racing")
    for i in range(19):
        create_key(user, f"key {i + 1}")
    sign_in(page, user)
    expect(page.locator("#count")).to_have_text("19 of 20 keys")
    # Another tab (here: the API) takes the last slot while this page still shows 19.
    create_key(user, "created elsewhere")
    status, refusal = api("POST", "/v1/keys.create", make_jwt(user), {"name": "x", "scopes": ["read"]})
    assert status == 409 and refusal["error"]["code"] == "key_limit_reached", (status, refusal)
    dialog = generate_in_ui(page, "one too many", ["read"])
    error = dialog.get_by_role("alert")
    expect(error).to_have_text(f"{refusal['error']['message']} (key_limit_reached)")
    shot(page, "limit-refused")
    axe(page, "create refused at the limit")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#count")).to_have_text("20 of 20 keys")
    expect(page.get_by_role("button", name="Generate API Key")).to_be_disabled()
    status, listed = api("GET", "/v1/keys.list", make_jwt(user))
    assert listed["count"] == 20, listed


@check
def api_errors_are_shown_with_their_message(page):
    user = new_user("errors")
    sign_in(page, user)
    token = make_jwt(user)
    for name, scopes, code in (("a\u200bb", ["read"], "invalid_name"), ("no scope", [], "invalid_scopes")):
        status, refusal = api("POST", "/v1/keys.create", token, {"name": name, "scopes": scopes})
        assert status == 400 and refusal["error"]["code"] == code, (status, refusal)
        dialog = generate_in_ui(page, name, scopes)
        expect(dialog.get_by_role("alert")).to_have_text(f"{refusal['error']['message']} ({code})")
        dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#count")).to_have_text("0 of 20 keys")


@check
def a_name_with_markup_shows_as_text(page):
    user = new_user("markup")
    name = "<script>window.__x=1</script><img src=x onerror=window.__x=2>"
    sign_in(page, user)
    generate_in_ui(page, name, ["read"])
    dialog, _ = read_secret(page)
    dialog.get_by_role("button", name="Done").click()
    expect(key_heading(page, name)).to_have_text(name)
    assert page.locator("#keys img, #keys script").count() == 0, "markup became elements"
    assert page.evaluate("window.__x") is None, "the name ran as script"
    page.get_by_role("button", name=f"Delete {name}", exact=True).click()
    expect(page.locator("#delete-name")).to_have_text(name)
    assert page.locator("dialog img, dialog script").count() == 0
    page.get_by_role("button", name="Cancel").click()


@check
def an_expired_token_returns_to_sign_in(page):
    user = new_user("expired")
    token = make_jwt(user, expires_in=-3600)
    status, refusal = api("GET", "/v1/keys.list", token)
    assert status == 401, (status, refusal)
    page.goto(f"{BASE}/console#token={token}")
    expect_signed_out(page)
    expect(page.locator("#sign-in-message")).to_have_text(
        "Your token has expired, so you were signed out. "
        f"The API answered: “{refusal['error']['message']}” Sign in again with a new token."
    )
    assert page.url == f"{BASE}/console", page.url
    shot(page, "expired")
    axe(page, "signed out after a 401")


@check
def a_token_refused_mid_session_returns_to_sign_in(page):
    user = new_user("revoked")
    create_key(user, "still here")
    sign_in(page, user)
    expect(key_heading(page, "still here")).to_be_visible()
    # From now on the API refuses the token (as when its secret is rotated): signed with another.
    foreign = make_jwt(user, secret="another-secret-0123456789abcdef-0123456789")
    page.evaluate(f"sessionStorage.setItem('{TOKEN_STORAGE}', '{foreign}')")
    page.reload()
    expect_signed_out(page)
    expect(page.locator("#sign-in-message")).to_contain_text("did not accept your token")
    assert page.locator("#keys li").count() == 0


REFUSED = json.dumps({"error": {"code": "invalid_token", "message": "The token has expired."}})


def refuse(page, path):
    """From now on the API answers `path` with 401, as for a token that has expired meanwhile."""
    page.route(f"{BASE}{path}", lambda route: route.fulfill(
        status=401, content_type="application/json", body=REFUSED))


def sign_in_again(page, user):
    """Back to the sign-in screen's state of a new visit, the API answering again, and signed in."""
    page.unroute_all()
    page.goto("about:blank")
    sign_in(page, user)


def assert_signed_out_leaving_nothing(page, *texts):
    """Signed out, no dialog open, focus in the token field, and none of `texts` (a secret, the
    account, key names and previews) anywhere in the page."""
    expect_signed_out(page)
    assert open_dialogs(page) == [], f"open after signing out: {open_dialogs(page)}"
    for text in texts:
        assert not secret_anywhere(page, text), f"{text!r} is still in the page after signing out"
    page.wait_for_timeout(100)  # the closed dialogs' close events, which give focus back
    expect_focus_on(page, "Management token")


@check
def signing_out_forgets_a_new_secret_on_screen(page):
    user = new_user("sign-out-secret")
    key = create_key(user, "private key name", ["read", "write"])
    private = [user, "private key name", key["preview"]]
    # A new key's secret on screen when the API refuses the token (loading the list after it).
    sign_in(page, user)
    refuse(page, "/v1/keys.list")
    with page.expect_response(f"{BASE}/v1/keys.create") as answer:
        generate_in_ui(page, "created before sign-out", ["read"])
    created = answer.value.json()
    assert KEY_PATTERN.match(created["key"]), created
    assert_signed_out_leaving_nothing(page, created["key"], created["preview"], "created before sign-out", *private)
    axe(page, "signed out with a new key on screen")
    # A rolled key's new secret on screen, then signed out (the Sign out button is behind the
    # modal dialog for a person; a 401 anywhere, as above, signs out the same way).
    sign_in_again(page, user)
    submit_roll(page, open_roll(page, "private key name"))
    _, secret = read_secret(page)
    expect(page.locator("#keys-status")).to_have_text("Rolled “private key name”.")
    page.evaluate("document.getElementById('sign-out').click()")
    expect(page.locator("#sign-in-message")).to_have_text("You signed out.")
    assert_signed_out_leaving_nothing(page, secret, f"ak_...{secret[-4:]}", *private)
    assert verify_status(secret)[0] == 200, "the rolled key itself should be unharmed"


@check
def a_401_in_any_dialog_signs_out_and_closes_it(page):
    user = new_user("sign-out-dialogs")
    key = create_key(user, "private key name", ["read", "write"])
    private = [user, "private key name", key["preview"]]
    sign_in(page, user)
    # Generate, with a name typed.
    refuse(page, "/v1/keys.create")
    generate_in_ui(page, "typed before sign-out", ["read"])
    assert_signed_out_leaving_nothing(page, "typed before sign-out", *private)
    # Edit, with a new name typed.
    sign_in_again(page, user)
    refuse(page, "/v1/keys.update")
    dialog = open_edit(page, "private key name")
    dialog.get_by_label("Name").fill("renamed before sign-out")
    save_edit(page, dialog)
    assert_signed_out_leaving_nothing(page, "renamed before sign-out", *private)
    # Roll.
    sign_in_again(page, user)
    refuse(page, "/v1/keys.roll")
    submit_roll(page, open_roll(page, "private key name"))
    assert_signed_out_leaving_nothing(page, *private)
    # Delete.
    sign_in_again(page, user)
    refuse(page, "/v1/keys.delete")
    open_key_dialog(page, "Delete", "private key name", "Delete API key").get_by_role(
        "button", name="Delete key").click()
    assert_signed_out_leaving_nothing(page, *private)
    expect(page.locator("#sign-in-message")).to_contain_text("The token has expired.")
    axe(page, "signed out from a dialog")
    listed = listed_key(user, key["id"])
    assert (listed["name"], listed["preview"]) == ("private key name", key["preview"]), listed


@check
def the_whole_flow_by_keyboard_alone(page):
    user = new_user("keyboard")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=BASE)
    page.goto(f"{BASE}/console")
    expect_signed_out(page)
    page.evaluate("document.activeElement.blur()")
    tab_to(page, "Management token")
    page.keyboard.insert_text(make_jwt(user))
    tab_to(page, "Sign in")
    page.keyboard.press("Enter")
    expect(page.locator("#account-sub")).to_have_text(user)
    expect(page.locator("#count")).to_have_text("0 of 20 keys")
    # Escape closes a dialog and gives focus back.
    generate = open_by_keyboard(page, "Generate API Key", "Generate API Key")
    escape_back_to(page, generate, "Generate API Key")
    # Create.
    page.keyboard.press("Enter")
    expect_focus_on(page, "Name")
    page.keyboard.type("typed key")
    tab_to(page, "write")
    page.keyboard.press("Space")
    expect(page.get_by_role("checkbox", name="write", exact=True)).to_be_checked()
    tab_to(page, "Create")
    page.keyboard.press("Enter")
    dialog, secret = read_secret(page)
    expect_focus_on(page, "Copy")
    page.keyboard.press("Enter")
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    tab_to(page, "Done")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(key_heading(page, "typed key")).to_be_visible()
    assert not secret_anywhere(page, secret)
    status, body = verify_status(secret, "write")
    assert status == 200, (status, body)
    # Delete.
    tab_to(page, "Delete typed key")
    page.keyboard.press("Enter")
    confirmation = page.get_by_role("dialog", name="Delete API key")
    expect(confirmation).to_be_visible()
    tab_to(page, "Delete key")
    page.keyboard.press("Enter")
    expect(confirmation).to_be_hidden()
    expect(key_heading(page, "typed key")).to_have_count(0)
    assert verify_status(secret)[0] == 401
    # Sign out.
    tab_to(page, "Sign out")
    page.keyboard.press("Enter")
    expect_signed_out(page)


@check
def rename_a_key_through_the_edit_dialog(page):
    user = new_user("rename")
    key = create_key(user, "old name", ["read", "write"])
    other = create_key(user, "untouched", ["admin"])
    sign_in(page, user)
    dialog = open_edit(page, "old name")
    expect(dialog).to_contain_text(key["preview"])
    expect(dialog.get_by_label("Name")).to_have_value("old name")
    expect(dialog.get_by_label("Name")).to_be_focused()
    for scope, ticked in (("read", True), ("write", True), ("admin", False)):
        box = dialog.get_by_role("checkbox", name=scope, exact=True)
        expect(box).to_be_checked() if ticked else expect(box).not_to_be_checked()
    expect(dialog.get_by_role("checkbox", name="Enabled", exact=True)).to_be_checked()
    shot(page, "edit")
    axe(page, "edit dialog")
    dialog.get_by_label("Name").fill("new name")
    sent = save_edit(page, dialog)
    assert sent == {"id": key["id"], "name": "new name"}, f"not only the change was sent: {sent}"
    expect(dialog).to_be_hidden()
    expect(key_heading(page, "new name")).to_be_visible()
    expect(key_heading(page, "old name")).to_have_count(0)
    expect(page.locator("#keys-status")).to_have_text("Saved “new name”.")
    expect(key_item(page, "new name")).to_contain_text(key["preview"])
    expect_focus_on(page, "Edit new name")
    status, body = verify_status(key["key"])
    assert status == 200 and (body["name"], body["scopes"]) == ("new name", ["read", "write"]), (status, body)
    assert listed_key(user, other["id"])["name"] == "untouched"
    axe(page, "list after a rename")


@check
def disable_then_enable_a_key(page):
    user = new_user("disable")
    key = create_key(user, "switchable", ["read"])
    sign_in(page, user)
    item = key_item(page, "switchable")
    expect(fact(item, "Status")).to_have_text("Enabled")
    expect(item.locator(".badge")).to_have_count(0)
    dialog = open_edit(page, "switchable")
    dialog.get_by_role("checkbox", name="Enabled", exact=True).uncheck()
    sent = save_edit(page, dialog)
    assert sent == {"id": key["id"], "enabled": False}, sent
    expect(dialog).to_be_hidden()
    # Marked twice: the status fact and a badge by the name, on a card drawn differently.
    expect(fact(item, "Status")).to_have_text("Disabled")
    expect(item.locator(".badge")).to_have_text("Disabled")
    expect(item).to_have_class(re.compile(r"\bkey-off\b"))
    status, body = verify_status(key["key"])
    assert (status, body) == (401, {"valid": False, "code": "key_disabled"}), (status, body)
    assert listed_key(user, key["id"])["enabled"] is False
    shot(page, "disabled")
    axe(page, "list with a disabled key")
    dialog = open_edit(page, "switchable")
    expect(dialog.get_by_role("checkbox", name="Enabled", exact=True)).not_to_be_checked()
    dialog.get_by_role("checkbox", name="Enabled", exact=True).check()
    sent = save_edit(page, dialog)
    assert sent == {"id": key["id"], "enabled": True}, sent
    expect(dialog).to_be_hidden()
    expect(fact(item, "Status")).to_have_text("Enabled")
    expect(item.locator(".badge")).to_have_count(0)
    status, body = verify_status(key["key"])
    assert status == 200 and body["valid"] is True, (status, body)


@check
def narrowing_scopes_is_effective_at_once(page):
    user = new_user("narrow-scopes")
    key = create_key(user, "writer", ["read", "write"])
    assert forward_auth_status(key["key"], "write")[0] == 200
    sign_in(page, user)
    dialog = open_edit(page, "writer")
    dialog.get_by_role("checkbox", name="write", exact=True).uncheck()
    sent = save_edit(page, dialog)
    assert sent == {"id": key["id"], "scopes": ["read"]}, sent
    expect(dialog).to_be_hidden()
    expect(key_item(page, "writer").locator(".scope")).to_have_text(["read"])
    status, body = forward_auth_status(key["key"], "write")
    assert status == 403, (status, body)
    status, body = forward_auth_status(key["key"], "read")
    assert status == 200, (status, body)


@check
def an_invalid_edit_shows_the_servers_message_and_changes_nothing(page):
    user = new_user("bad-edit")
    key = create_key(user, "stays", ["read", "write"])
    before = listed_key(user, key["id"])
    token = make_jwt(user)
    sign_in(page, user)
    for name, code in (("a\u200bb", "invalid_name"), ("   ", "invalid_name"), ("x" * 65, "invalid_name")):
        status, refusal = api("POST", "/v1/keys.update", token, {"id": key["id"], "name": name})
        assert status == 400 and refusal["error"]["code"] == code, (status, refusal)
        dialog = open_edit(page, "stays")
        dialog.get_by_label("Name").fill(name)
        dialog.get_by_role("checkbox", name="admin", exact=True).check()  # not saved either
        dialog.get_by_role("checkbox", name="Enabled", exact=True).uncheck()
        save_edit(page, dialog)
        expect(dialog.get_by_role("alert")).to_have_text(f"{refusal['error']['message']} ({code})")
        expect(dialog).to_be_visible()
        if name == "x" * 65:
            shot(page, "edit-refused")
            axe(page, "edit refused")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
    # No scope at all is refused the same way.
    status, refusal = api("POST", "/v1/keys.update", token, {"id": key["id"], "scopes": []})
    assert status == 400 and refusal["error"]["code"] == "invalid_scopes", (status, refusal)
    dialog = open_edit(page, "stays")
    for scope in ("read", "write"):
        dialog.get_by_role("checkbox", name=scope, exact=True).uncheck()
    assert save_edit(page, dialog) == {"id": key["id"], "scopes": []}
    expect(dialog.get_by_role("alert")).to_have_text(f"{refusal['error']['message']} (invalid_scopes)")
    dialog.get_by_role("button", name="Cancel").click()
    assert listed_key(user, key["id"]) == before, (listed_key(user, key["id"]), before)
    expect(key_heading(page, "stays")).to_be_visible()
    expect(fact(key_item(page, "stays"), "Status")).to_have_text("Enabled")
    assert verify_status(key["key"], "write")[0] == 200


@check
def editing_a_key_deleted_elsewhere_says_so(page):
    user = new_user("gone")
    key = create_key(user, "deleted elsewhere")
    sign_in(page, user)
    dialog = open_edit(page, "deleted elsewhere")
    status, refusal = api("POST", "/v1/keys.delete", make_jwt(user), {"id": key["id"]})
    assert status == 200, (status, refusal)
    status, refusal = api("POST", "/v1/keys.update", make_jwt(user), {"id": key["id"], "name": "x"})
    assert status == 404, (status, refusal)
    dialog.get_by_label("Name").fill("too late")
    save_edit(page, dialog)
    expect(dialog.get_by_role("alert")).to_have_text(f"{refusal['error']['message']} (key_not_found)")
    dialog.get_by_role("button", name="Cancel").click()
    expect(key_heading(page, "deleted elsewhere")).to_have_count(0)
    expect(page.locator("#count")).to_have_text("0 of 20 keys")


@check
def saving_without_a_change_sends_nothing(page):
    user = new_user("unchanged")
    create_key(user, "as it was", ["read"])
    sign_in(page, user)
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/v1/keys.update") else None)
    dialog = open_edit(page, "as it was")
    # Unticked and ticked again, renamed and named back: no change.
    dialog.get_by_role("checkbox", name="read", exact=True).uncheck()
    dialog.get_by_role("checkbox", name="read", exact=True).check()
    dialog.get_by_label("Name").fill("something else")
    dialog.get_by_label("Name").fill("as it was")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#keys-status")).to_have_text("Nothing to save: “as it was” is unchanged.")
    assert sent == [], sent


# New York: the local time typed is not UTC, so the conversion is tested.
@check(timezone_id="America/New_York", locale="en-US")
def create_with_an_expiry_and_the_list_shows_it(page):
    user = new_user("expiring")
    sign_in(page, user)
    page.get_by_role("button", name="Generate API Key").click()
    dialog = page.get_by_role("dialog", name="Generate API Key")
    expires = dialog.get_by_label("Expires (optional)")
    assert expires.get_attribute("type") == "datetime-local"
    axe(page, "generate dialog with an expiry")
    dialog.get_by_label("Name").fill("contractor")
    dialog.get_by_role("checkbox", name="read", exact=True).check()
    expires.fill("2030-01-02T03:04")  # 03:04 in New York (EST, UTC-5) is 08:04 UTC
    with page.expect_request(lambda r: r.url == f"{BASE}/v1/keys.create") as request:
        dialog.get_by_role("button", name="Create").click()
    sent = request.value.post_data_json
    assert sent == {"name": "contractor", "scopes": ["read"], "expires_at": "2030-01-02T08:04:00Z"}, sent
    secret_dialog, secret = read_secret(page)
    secret_dialog.get_by_role("button", name="Done").click()
    item = key_item(page, "contractor")
    expiry = item.locator("time[datetime='2030-01-02T08:04:00Z']")
    expect(expiry).to_have_text(re.compile(r"Jan 2, 2030.*3:04"))
    expect(fact(item, "Expires")).to_have_text(re.compile(r"Jan 2, 2030.*3:04"))
    status, body = verify_status(secret)
    assert status == 200 and body["expires_at"] == "2030-01-02T08:04:00Z", (status, body)
    # Empty means never; a second key without one says so.
    generate_in_ui(page, "forever", ["read"])
    secret_dialog, _ = read_secret(page)
    secret_dialog.get_by_role("button", name="Done").click()
    expect(fact(key_item(page, "forever"), "Expires")).to_have_text("Never")
    status, listed = api("GET", "/v1/keys.list", make_jwt(user))
    expiries = {k["name"]: k["expires_at"] for k in listed["keys"]}
    assert expiries == {"contractor": "2030-01-02T08:04:00Z", "forever": None}, expiries
    # A time in the past is the server's to refuse, with its message.
    status, refusal = api("POST", "/v1/keys.create", make_jwt(user),
                          {"name": "late", "scopes": ["read"], "expires_at": "2020-01-01T05:00:00Z"})
    assert status == 400 and refusal["error"]["code"] == "invalid_expires_at", (status, refusal)
    dialog = page.get_by_role("dialog", name="Generate API Key")
    page.get_by_role("button", name="Generate API Key").click()
    dialog.get_by_label("Name").fill("late")
    dialog.get_by_role("checkbox", name="read", exact=True).check()
    dialog.get_by_label("Expires (optional)").fill("2020-01-01T00:00")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.get_by_role("alert")).to_have_text(f"{refusal['error']['message']} (invalid_expires_at)")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#count")).to_have_text("2 of 20 keys")


@check
def an_expired_key_is_marked_and_not_counted(page):
    user = new_user("expired-key")
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    key = create_key_with(user, {"name": "short-lived", "scopes": ["read"], "expires_at": soon})
    create_key(user, "lasting")
    deadline = time.time() + 10
    while verify_status(key["key"])[0] == 200 and time.time() < deadline:
        time.sleep(0.25)
    assert verify_status(key["key"])[1] == {"valid": False, "code": "key_expired"}
    sign_in(page, user)
    item = key_item(page, "short-lived")
    expect(item.locator(".badge")).to_have_text("Expired")
    expect(fact(item, "Expired")).not_to_have_text("Never")
    expect(item).to_have_class(re.compile(r"\bkey-off\b"))
    expect(page.locator("#count")).to_have_text("1 of 20 keys")
    axe(page, "list with an expired key")


@check
def editing_by_keyboard_alone(page):
    user = new_user("keyboard-edit")
    key = create_key(user, "typed edit", ["read"])
    sign_in(page, user)
    page.evaluate("document.activeElement.blur()")
    # Escape leaves everything as it was and gives focus back.
    dialog = open_by_keyboard(page, "Edit typed edit", "Edit key")
    expect_focus_on(page, "Name")
    page.keyboard.type(" changed")
    escape_back_to(page, dialog, "Edit typed edit")
    assert listed_key(user, key["id"])["name"] == "typed edit"
    # Rename, add a scope and disable, all by keys.
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_have_value("typed edit")
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("renamed by keys")
    tab_to(page, "admin")
    page.keyboard.press("Space")
    tab_to(page, "Enabled")
    page.keyboard.press("Space")
    expect(dialog.get_by_role("checkbox", name="Enabled", exact=True)).not_to_be_checked()
    tab_to(page, "Save")
    axe(page, "edit dialog, by keyboard")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(key_heading(page, "renamed by keys")).to_be_visible()
    expect_focus_on(page, "Edit renamed by keys")
    status, body = verify_status(key["key"])
    assert (status, body) == (401, {"valid": False, "code": "key_disabled"}), (status, body)
    listed = listed_key(user, key["id"])
    assert (listed["name"], listed["scopes"], listed["enabled"]) == ("renamed by keys", ["read", "admin"], False), listed
    # Enable again by keys.
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    tab_to(page, "Enabled")
    page.keyboard.press("Space")
    tab_to(page, "Save")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(fact(key_item(page, "renamed by keys"), "Status")).to_have_text("Enabled")
    status, body = verify_status(key["key"], "admin")
    assert status == 200 and body["valid"] is True, (status, body)


def history(page):
    """The History section's entries, newest first."""
    return page.locator("#history-list > li")


def api_events(user):
    status, body = api("GET", "/v1/keys.events", make_jwt(user))
    assert status == 200, (status, body)
    return body["events"]


@check
def history_lists_create_rename_and_delete_newest_first(page):
    user = new_user("history")
    create_key(user, "kept", ["read"])
    sign_in(page, user)
    section = page.get_by_role("region", name="History")
    expect(section.get_by_role("heading", name="History", exact=True)).to_be_visible()
    expect(history(page)).to_have_count(1)
    expect(history(page).first).to_contain_text("Created “kept”")
    # Created in the UI: the history follows without a reload.
    generate_in_ui(page, "first name", ["read", "write"])
    dialog, _ = read_secret(page)
    dialog.get_by_role("button", name="Done").click()
    expect(history(page)).to_have_count(2)
    expect(history(page).first).to_contain_text("Created “first name”")
    # Renamed in the edit dialog.
    dialog = open_edit(page, "first name")
    dialog.get_by_label("Name").fill("second name")
    save_edit(page, dialog)
    expect(dialog).to_be_hidden()
    expect(history(page)).to_have_count(3)
    # Deleted.
    page.get_by_role("button", name="Delete second name", exact=True).click()
    page.get_by_role("dialog", name="Delete API key").get_by_role("button", name="Delete key").click()
    expect(key_heading(page, "second name")).to_have_count(0)
    expect(history(page)).to_have_count(4)
    heads = history(page).locator(".event-head")
    expect(heads.nth(0)).to_have_text(re.compile(r"Deleted “second name”$"))
    expect(heads.nth(1)).to_have_text(re.compile(r"Updated “second name”$"))
    expect(heads.nth(2)).to_have_text(re.compile(r"Created “first name”$"))
    expect(heads.nth(3)).to_have_text(re.compile(r"Created “kept”$"))
    expect(history(page).nth(1).locator(".event-changes > li")).to_have_text(["name: first name → second name"])
    for i in (0, 2, 3):
        expect(history(page).nth(i).locator(".event-changes")).to_have_count(0)
    # Each shows when, as the API says, in a <time>.
    events = api_events(user)
    assert [e["type"] for e in events] == ["deleted", "updated", "created", "created"], events
    for i, event in enumerate(events):
        expect(history(page).nth(i).locator("time")).to_have_attribute("datetime", event["at"])
        expect(history(page).nth(i).locator("time")).not_to_have_text("")
    expect(page.get_by_text("No changes yet.")).to_be_hidden()
    shot(page, "history", full_page=True)
    axe(page, "list with history")


@check
def history_shows_scopes_and_enabled_changes_and_starts_empty(page):
    user = new_user("history-fields")
    sign_in(page, user)
    expect(page.get_by_text("No changes yet.", exact=True)).to_be_visible()
    expect(history(page)).to_have_count(0)
    axe(page, "empty history")
    create_key(user, "toggled", ["read", "write"])
    page.reload()
    expect(history(page)).to_have_count(1)
    expect(page.get_by_text("No changes yet.", exact=True)).to_be_hidden()
    dialog = open_edit(page, "toggled")
    dialog.get_by_role("checkbox", name="write", exact=True).uncheck()
    dialog.get_by_role("checkbox", name="Enabled", exact=True).uncheck()
    save_edit(page, dialog)
    expect(dialog).to_be_hidden()
    expect(history(page)).to_have_count(2)
    expect(history(page).first.locator(".event-changes > li")).to_have_text(
        ["scopes: read, write → read", "enabled: yes → no"])


@check
def a_key_that_expired_shows_as_deleted_expired(page):
    user = new_user("history-expired")
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    key = create_key_with(user, {"name": "short-lived", "scopes": ["read"], "expires_at": soon})
    for i in range(19):
        create_key(user, f"key {i + 1}")
    deadline = time.time() + 10
    while verify_status(key["key"])[0] == 200 and time.time() < deadline:
        time.sleep(0.25)
    sign_in(page, user)
    expect(page.locator("#count")).to_have_text("19 of 20 keys")
    # At the limit, the next create frees the expired key's slot: its owner sees that as a change.
    generate_in_ui(page, "successor", ["read"])
    dialog, _ = read_secret(page)
    dialog.get_by_role("button", name="Done").click()
    expect(history(page).locator(".event-head", has_text="Deleted (expired) “short-lived”")).to_have_count(1)
    expect(history(page).first).to_contain_text("“successor”")


@check
def a_name_with_markup_in_history_shows_as_text(page):
    user = new_user("history-markup")
    name = "<script>window.__h=1</script><img src=x onerror=window.__h=2>"
    key = create_key(user, name)
    renamed = "<b>bold</b><img src=x onerror=window.__h=3>"
    status, body = api("POST", "/v1/keys.update", make_jwt(user), {"id": key["id"], "name": renamed})
    assert status == 200, (status, body)
    sign_in(page, user)
    expect(history(page)).to_have_count(2)
    expect(history(page).nth(1).locator(".event-name")).to_have_text(name)
    expect(history(page).first.locator(".event-changes > li")).to_have_text([f"name: {name} → {renamed}"])
    assert page.locator("#history script, #history img, #history b").count() == 0, "markup became elements"
    assert page.evaluate("window.__h") is None, "the name ran as script"


@check
def history_errors_show_and_a_401_signs_out(page):
    user = new_user("history-errors")
    create_key(user, "listed anyway")
    body = json.dumps({"error": {"code": "internal", "message": "The store is unreachable."}})
    page.route(f"{BASE}/v1/keys.events", lambda route: route.fulfill(
        status=500, content_type="application/json", body=body))
    sign_in(page, user)
    expect(key_heading(page, "listed anyway")).to_be_visible()
    expect(page.locator("#history-error")).to_have_text("The store is unreachable. (internal)")
    expect(page.get_by_text("No changes yet.", exact=True)).to_be_hidden()
    page.unroute(f"{BASE}/v1/keys.events")
    body = json.dumps({"error": {"code": "unauthorized", "message": "The token was revoked."}})
    page.route(f"{BASE}/v1/keys.events", lambda route: route.fulfill(
        status=401, content_type="application/json", body=body))
    page.reload()
    expect_signed_out(page)
    expect(page.locator("#sign-in-message")).to_contain_text("The token was revoked.")
    expect(history(page)).to_have_count(0)


# ---- Roll --------------------------------------------------------------------------------------


# Kolkata (UTC+05:30, no daylight saving): the grace end shown is local time, not UTC.
@check(timezone_id="Asia/Kolkata", locale="en-US")
def roll_with_a_grace_shows_the_new_secret_once_and_both_verify(page):
    user = new_user("roll")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=BASE)
    key = create_key(user, "CI deploy", ["read", "write"])
    other = create_key(user, "untouched", ["read"])
    sign_in(page, user)
    item = key_item(page, "CI deploy")
    expect(item.locator(".old-key")).to_have_count(0)
    dialog = open_roll(page, "CI deploy")
    expect(dialog).to_contain_text("“CI deploy”")
    expect(dialog).to_contain_text(key["preview"])
    expect(dialog).to_contain_text("new secret")
    grace = dialog.get_by_label("Old key keeps working for")
    expect(grace).to_be_focused()
    expect(grace).to_have_value("86400")  # 24 hours unless chosen otherwise
    expect(grace.locator("option")).to_have_text(["Stop at once", "1 hour", "24 hours", "7 days"])
    values = [option.get_attribute("value") for option in grace.locator("option").all()]
    assert values == ["0", "3600", "86400", "604800"], values
    shot(page, "roll")
    axe(page, "roll dialog", any_impact=True)
    before = time.time()
    sent = submit_roll(page, dialog)
    assert sent == {"id": key["id"], "grace_seconds": 86400}, sent
    secret_dialog, secret = read_secret(page)
    expect(dialog).to_be_hidden()
    assert secret != key["key"]
    expect(secret_dialog).to_contain_text("will not be shown again")
    expect(page.locator("#secret-note")).to_have_text(
        f"It replaces the key {key['preview']}, which keeps working for 24 hours.")
    shot(page, "roll-secret")
    axe(page, "dialog with the secret of a roll", any_impact=True)
    secret_dialog.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # The new secret verifies, as the same key; the old one too, for its grace.
    status, body = verify_status(secret, "write")
    assert status == 200 and (body["key_id"], body["name"]) == (key["id"], "CI deploy"), (status, body)
    status, body = verify_status(key["key"], "write")
    assert status == 200 and body["key_id"] == key["id"], (status, body)
    secret_dialog.get_by_role("button", name="Done").click()
    expect(secret_dialog).to_be_hidden()
    expect_focus_on(page, "Roll CI deploy")
    assert not secret_anywhere(page, secret), "the secret is still in the page after Done"
    expect(page.locator("#keys-status")).to_have_text("Rolled “CI deploy”.")
    # The list: the new preview, and until when the old key works, in local time.
    new_preview = f"ak_...{secret[-4:]}"
    expect(fact(item, "Key").locator("code")).to_have_text(new_preview)
    listed = listed_key(user, key["id"])
    ends = listed["previous_key_expires_at"]
    assert listed["preview"] == new_preview and ends is not None, listed
    assert before + 86400 - 5 <= epoch(ends) <= time.time() + 86400 + 5, (before, ends)
    old = item.locator(".old-key")
    expect(old).to_have_text(re.compile(r"^Old key works until \S"))
    expect(old.locator("time")).to_have_attribute("datetime", ends)
    local = time.gmtime(epoch(ends) + 5 * 3600 + 30 * 60)
    expect(old.locator("time")).to_have_text(re.compile(
        rf"^{time.strftime('%b', local)} {local.tm_mday}, {local.tm_year}\D+{(local.tm_hour % 12) or 12}:{local.tm_min:02d}\D"))
    expect(page.locator("#count")).to_have_text("2 of 20 keys")
    # The other key is as it was.
    untouched = listed_key(user, other["id"])
    assert (untouched["preview"], untouched["previous_key_expires_at"]) == (other["preview"], None), untouched
    expect(key_item(page, "untouched").locator(".old-key")).to_have_count(0)
    assert verify_status(other["key"])[0] == 200
    axe(page, "list with a rolled key", any_impact=True)


@check
def roll_with_stop_at_once_ends_the_old_key_at_once(page):
    user = new_user("roll-now")
    key = create_key(user, "rotated now", ["read"])
    sign_in(page, user)
    dialog = open_roll(page, "rotated now")
    dialog.get_by_label("Old key keeps working for").select_option(label="Stop at once")
    sent = submit_roll(page, dialog)
    assert sent == {"id": key["id"], "grace_seconds": 0}, sent
    secret_dialog, secret = read_secret(page)
    expect(page.locator("#secret-note")).to_have_text(
        f"It replaces the key {key['preview']}, which stopped working at once.")
    status, body = verify_status(key["key"])
    assert (status, body) == (401, {"valid": False, "code": "invalid_key"}), (status, body)
    status, body = verify_status(secret)
    assert status == 200 and body["key_id"] == key["id"], (status, body)
    secret_dialog.get_by_role("button", name="Done").click()
    expect(secret_dialog).to_be_hidden()
    assert not secret_anywhere(page, secret), "the secret is still in the page after Done"
    item = key_item(page, "rotated now")
    expect(fact(item, "Key").locator("code")).to_have_text(f"ak_...{secret[-4:]}")
    expect(item.locator(".old-key")).to_have_count(0)
    assert listed_key(user, key["id"])["previous_key_expires_at"] is None
    expect(history(page).first.locator(".event-head")).to_have_text(re.compile(r"Rolled “rotated now”$"))
    expect(history(page).first.locator(".event-detail")).to_have_text("old key stopped at once")
    # Escape forgets a roll's secret too.
    dialog = open_roll(page, "rotated now")
    submit_roll(page, dialog)
    secret_dialog, second = read_secret(page)
    page.keyboard.press("Escape")
    expect(secret_dialog).to_be_hidden()
    assert not secret_anywhere(page, second), "the secret is still in the page after Escape"
    expect(page.locator("#secret-note")).to_be_hidden()
    assert verify_status(second)[0] == 200


@check
def rolling_by_keyboard_alone(page):
    user = new_user("keyboard-roll")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=BASE)
    key = create_key(user, "typed roll", ["read"])
    sign_in(page, user)
    page.evaluate("document.activeElement.blur()")
    # Escape leaves the key as it was and gives focus back.
    dialog = open_by_keyboard(page, "Roll typed roll", "Roll API key")
    expect_focus_on(page, "Old key keeps working for")
    assert_focus_ring(page, "Old key keeps working for")
    escape_back_to(page, dialog, "Roll typed roll")
    assert listed_key(user, key["id"])["preview"] == key["preview"]
    assert [e["type"] for e in api_events(user)] == ["created"]
    # Roll with a grace of one hour, chosen with the arrow keys.
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    grace = dialog.get_by_label("Old key keeps working for")
    expect(grace).to_be_focused()
    assert_focus_ring(page, "Old key keeps working for")
    page.keyboard.press("ArrowUp")
    expect(grace).to_have_value("3600")
    tab_to(page, "Roll key")
    axe(page, "roll dialog, by keyboard", any_impact=True)
    with page.expect_request(lambda r: r.url == f"{BASE}/v1/keys.roll") as request:
        page.keyboard.press("Enter")
    assert request.value.post_data_json == {"id": key["id"], "grace_seconds": 3600}, request.value.post_data_json
    secret_dialog, secret = read_secret(page)
    expect_focus_on(page, "Copy")
    page.keyboard.press("Enter")
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    tab_to(page, "Done")
    page.keyboard.press("Enter")
    expect(secret_dialog).to_be_hidden()
    assert not secret_anywhere(page, secret)
    # Back on the key's Roll button, as the list is drawn after the roll.
    expect(key_item(page, "typed roll").locator(".old-key")).to_contain_text("Old key works until")
    expect_focus_on(page, "Roll typed roll")
    assert page.evaluate("document.activeElement.isConnected")
    assert verify_status(secret)[0] == 200
    assert verify_status(key["key"])[0] == 200  # in its hour of grace


@check
def a_roll_dialog_opened_again_at_once_still_rolls(page):
    # Escape, then Enter at once on the same Roll button: the browser fires the first closing's
    # close event a task later, and a key press can come before it. Done here in one task, so
    # that the order is certain.
    user = new_user("reopen-roll")
    key = create_key(user, "quick hands")
    sign_in(page, user)
    dialog = open_roll(page, "quick hands")
    page.evaluate("""() => { document.querySelector("#roll-dialog").close();
                             document.activeElement.click(); }""")
    expect(dialog).to_be_visible()
    assert submit_roll(page, dialog) == {"id": key["id"], "grace_seconds": 86400}
    secret_dialog, secret = read_secret(page)
    secret_dialog.get_by_role("button", name="Done").click()
    expect(secret_dialog).to_be_hidden()
    expect_focus_on(page, "Roll quick hands")
    assert verify_status(secret)[0] == 200


@check
def a_refused_roll_shows_the_servers_message_and_changes_nothing(page):
    user = new_user("bad-roll")
    doomed = create_key(user, "deleted elsewhere")
    kept = create_key(user, "kept", ["read", "write"])
    token = make_jwt(user)
    before = listed_key(user, kept["id"])
    sign_in(page, user)
    dialog = open_roll(page, "deleted elsewhere")
    # Another tab (here: the API) deletes the key while the dialog is open.
    status, body = api("POST", "/v1/keys.delete", token, {"id": doomed["id"]})
    assert status == 200, (status, body)
    status, refusal = api("POST", "/v1/keys.roll", token, {"id": doomed["id"], "grace_seconds": 86400})
    assert status == 404 and refusal["error"]["code"] == "key_not_found", (status, refusal)
    submit_roll(page, dialog)
    expect(dialog.get_by_role("alert")).to_have_text(f"{refusal['error']['message']} (key_not_found)")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("dialog", name="Your new API key")).to_be_hidden()
    shot(page, "roll-refused")
    axe(page, "roll refused", any_impact=True)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(key_heading(page, "deleted elsewhere")).to_have_count(0)
    expect(page.locator("#count")).to_have_text("1 of 20 keys")
    # A store failure: its message, and the key as it was.
    message = "The key-value store is unavailable; nothing was changed. Retry."
    body = json.dumps({"error": {"code": "store_unavailable", "message": message}})
    page.route(f"{BASE}/v1/keys.roll", lambda route: route.fulfill(
        status=503, content_type="application/json", body=body))
    dialog = open_roll(page, "kept")
    dialog.get_by_label("Old key keeps working for").select_option(label="7 days")
    assert submit_roll(page, dialog) == {"id": kept["id"], "grace_seconds": 604800}
    expect(dialog.get_by_role("alert")).to_have_text(f"{message} (store_unavailable)")
    expect(page.get_by_role("dialog", name="Your new API key")).to_be_hidden()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    # Opened again, the dialog starts afresh.
    dialog = open_roll(page, "kept")
    expect(page.locator("#roll-error")).to_have_text("")
    expect(dialog.get_by_label("Old key keeps working for")).to_have_value("86400")
    dialog.get_by_role("button", name="Cancel").click()
    assert listed_key(user, kept["id"]) == before, (listed_key(user, kept["id"]), before)
    expect(fact(key_item(page, "kept"), "Key").locator("code")).to_have_text(kept["preview"])
    expect(key_item(page, "kept").locator(".old-key")).to_have_count(0)
    assert verify_status(kept["key"], "write")[0] == 200
    assert "rolled" not in [e["type"] for e in api_events(user)]
    expect(history(page).locator(".event-head", has_text="Rolled")).to_have_count(0)


@check
def history_shows_rolls_and_how_long_the_old_key_works(page):
    user = new_user("history-roll")
    key = create_key(user, "rolled twice", ["read"])
    sign_in(page, user)
    expect(history(page)).to_have_count(1)
    dialog = open_roll(page, "rolled twice")
    dialog.get_by_label("Old key keeps working for").select_option(label="1 hour")
    assert submit_roll(page, dialog) == {"id": key["id"], "grace_seconds": 3600}
    secret_dialog, _ = read_secret(page)
    secret_dialog.get_by_role("button", name="Done").click()
    # The history follows without a reload.
    expect(history(page)).to_have_count(2)
    first = history(page).first
    expect(first.locator(".event-head")).to_have_text(re.compile(r"Rolled “rolled twice”$"))
    events = api_events(user)
    assert events[0]["type"] == "rolled", events
    ends = events[0]["previous_key_expires_at"]
    assert epoch(ends) - epoch(events[0]["at"]) == 3600, events[0]
    expect(first.locator(".event-detail")).to_have_text(re.compile(r"^old key until \S"))
    expect(first.locator(".event-detail time")).to_have_attribute("datetime", ends)
    expect(first.locator(".event-when")).to_have_attribute("datetime", events[0]["at"])
    # Rolled again at once: this roll's old key stopped, the first one's keeps its hour.
    dialog = open_roll(page, "rolled twice")
    dialog.get_by_label("Old key keeps working for").select_option(label="Stop at once")
    assert submit_roll(page, dialog) == {"id": key["id"], "grace_seconds": 0}
    secret_dialog, _ = read_secret(page)
    secret_dialog.get_by_role("button", name="Done").click()
    expect(history(page)).to_have_count(3)
    expect(history(page).first.locator(".event-head")).to_have_text(re.compile(r"Rolled “rolled twice”$"))
    expect(history(page).first.locator(".event-detail")).to_have_text("old key stopped at once")
    expect(history(page).nth(1).locator(".event-detail time")).to_have_attribute("datetime", ends)
    expect(history(page).nth(2).locator(".event-head")).to_have_text(re.compile(r"Created “rolled twice”$"))
    expect(history(page).nth(2).locator(".event-detail")).to_have_count(0)
    events = api_events(user)
    assert [e["type"] for e in events] == ["rolled", "rolled", "created"], events
    assert events[0]["previous_key_expires_at"] == events[0]["at"], events[0]
    assert verify_status(key["key"])[0] == 200, "the first roll's old key lost its hour"
    expect(key_item(page, "rolled twice").locator(".old-key time")).to_have_attribute("datetime", ends)
    shot(page, "history-rolled", full_page=True)
    axe(page, "history with rolls", any_impact=True)


@check
def rolling_at_320_px(page):
    user = new_user("narrow-roll")
    name = "W" * 64
    key = create_key(user, name, ["read", "write", "admin"])
    rolled = roll_key(user, key["id"], 604800)
    create_key(user, "A key with a long name that has to wrap on a phone", ["read"])
    page.set_viewport_size({"width": 320, "height": 640})
    sign_in(page, user)
    item = key_item(page, name)
    expect(item.locator(".old-key time")).to_have_attribute("datetime", rolled["previous_key_expires_at"])
    expect(history(page)).to_have_count(3)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 320, f"the page is {overflow} px wide at 320 px"
    for control in page.get_by_role("button").all() + [item.locator(".old-key")]:
        if control.is_visible():
            box = control.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    shot(page, "narrow-rolled", full_page=True)
    axe(page, "list with a rolled key at 320 px", any_impact=True)
    dialog = open_roll(page, name)
    widths = dialog.evaluate("d => [d.scrollWidth, d.clientWidth]")
    assert widths[0] <= widths[1], f"the roll dialog's content is wider than it: {widths}"
    for control in [dialog] + dialog.get_by_role("button").all() + [dialog.get_by_label("Old key keeps working for")]:
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    shot(page, "narrow-roll")
    axe(page, "roll dialog at 320 px", any_impact=True)
    submit_roll(page, dialog)
    secret_dialog, secret = read_secret(page)
    widths = secret_dialog.evaluate("d => [d.scrollWidth, d.clientWidth]")
    assert widths[0] <= widths[1], f"the secret dialog's content is wider than it: {widths}"
    box = secret_dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    axe(page, "secret of a roll at 320 px", any_impact=True)
    secret_dialog.get_by_role("button", name="Done").click()
    expect(fact(item, "Key").locator("code")).to_have_text(f"ak_...{secret[-4:]}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320


# ---- Revoked keys ------------------------------------------------------------------------------


LEAK_URL = "https://github.com/octo-org/shop/blob/4b2e9f0/deploy/config.yml#L12"


def leaks(page):
    """The banner over the list that names the keys revoked because they leaked."""
    return page.locator("#leaks")


@check
def a_leaked_key_shows_as_revoked_with_a_banner_naming_it_and_where_it_was_found(page):
    user = new_user("leaked")
    key = create_key(user, "CI deploy", ["read", "write"])
    create_key(user, "still fine")
    leak_alert((key["key"], LEAK_URL, "commit"))
    assert verify_status(key["key"]) == (401, {"valid": False, "code": "key_revoked"})
    revoked = listed_key(user, key["id"])["revoked"]
    assert (revoked["reason"], revoked["url"], revoked["source"]) == ("leaked", LEAK_URL, "commit"), revoked
    sign_in(page, user)
    # The banner, over the page's heading: which key, where it was found, what to do.
    banner = leaks(page)
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_be_visible()
    expect(banner.locator(".leaks-title")).to_have_text("A key of yours was found in public and revoked")
    expect(banner).to_contain_text(f"“CI deploy” was found at {LEAK_URL} and revoked ")
    expect(banner).to_contain_text("It no longer works.")
    expect(banner).to_contain_text("Generate a new key, put it in place of the revoked one in whatever "
                                   "service, gateway or script uses it, then remove the revoked key here.")
    link = banner.get_by_role("link", name=LEAK_URL, exact=True)
    expect(link).to_have_attribute("href", LEAK_URL)
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(banner.locator("time")).to_have_attribute("datetime", revoked["at"])
    heading = page.get_by_role("heading", name="API Keys", exact=True)
    assert banner.bounding_box()["y"] < heading.bounding_box()["y"], "the banner is not at the top"
    # The key: revoked, why and when, where; it can only be removed.
    item = key_item(page, "CI deploy")
    expect(item.locator(".badge")).to_have_text(["Revoked"])
    expect(item).to_have_class(re.compile(r"\bkey-off\b"))
    expect(fact(item, "Status")).to_have_text("Revoked")
    expect(fact(item, "Revoked")).to_contain_text("Leaked — found in public (commit), ")
    expect(fact(item, "Revoked").locator("time")).to_have_attribute("datetime", revoked["at"])
    found = fact(item, "Found at").get_by_role("link", name=LEAK_URL, exact=True)
    expect(found).to_have_attribute("href", LEAK_URL)
    expect(found).to_have_attribute("rel", "noopener noreferrer")
    for action in ("Edit", "Roll", "Delete"):
        expect(page.get_by_role("button", name=f"{action} CI deploy", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Remove CI deploy", exact=True)).to_be_visible()
    # The other key is as it was; the revoked one counts toward no limit.
    for action in ("Edit", "Roll", "Delete"):
        expect(page.get_by_role("button", name=f"{action} still fine", exact=True)).to_be_visible()
    expect(fact(key_item(page, "still fine"), "Status")).to_have_text("Enabled")
    expect(leaks(page).get_by_text("still fine")).to_have_count(0)
    expect(page.locator("#count")).to_have_text("1 of 20 keys")
    shot(page, "leaked", full_page=True)
    axe(page, "a leaked key: the banner and the revoked key", any_impact=True)


@check
def removing_leaked_keys_takes_them_and_then_the_banner_away(page):
    user = new_user("leaked-remove")
    first = create_key(user, "first leak")
    second = create_key(user, "second leak")
    kept = create_key(user, "kept")
    leak_alert((first["key"], LEAK_URL, "content"), (second["key"], None, None))
    sign_in(page, user)
    banner = leaks(page)
    expect(banner.locator(".leaks-title")).to_have_text("2 keys of yours were found in public and revoked")
    expect(banner.locator("li")).to_have_text([
        re.compile(f"^“first leak” was found at {re.escape(LEAK_URL)} and revoked .+\\. It no longer works\\.$"),
        re.compile("^“second leak” was found in public and revoked .+\\. It no longer works\\.$"),
    ])
    expect(banner.get_by_role("link")).to_have_count(1)
    expect(fact(key_item(page, "second leak"), "Found at")).to_have_count(0)
    # Remove asks first, in words for a key that already stopped working; Cancel keeps it.
    page.get_by_role("button", name="Remove first leak", exact=True).click()
    dialog = page.get_by_role("dialog", name="Remove revoked key")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Remove the revoked key “first leak”? It no longer works, and is "
                                   "gone from this list once removed. This cannot be undone.")
    shot(page, "remove-revoked")
    axe(page, "removing a revoked key: the confirmation", any_impact=True)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect_focus_on(page, "Remove first leak")
    expect(key_heading(page, "first leak")).to_be_visible()
    page.get_by_role("button", name="Remove first leak", exact=True).click()
    dialog.get_by_role("button", name="Remove key").click()
    expect(dialog).to_be_hidden()
    expect(key_heading(page, "first leak")).to_have_count(0)
    expect(page.locator("#keys-status")).to_have_text("Removed “first leak”.")
    expect(banner.locator(".leaks-title")).to_have_text("A key of yours was found in public and revoked")
    expect(banner.locator("li")).to_have_count(1)
    expect(banner).to_contain_text("“second leak” was found in public")
    # The last one removed: no banner is left; the live key's dialog still says delete.
    page.get_by_role("button", name="Remove second leak", exact=True).click()
    dialog.get_by_role("button", name="Remove key").click()
    expect(key_heading(page, "second leak")).to_have_count(0)
    expect(banner).to_be_empty()
    expect(banner).to_be_hidden()
    expect(history(page).locator(".event-head").first).to_have_text(re.compile(r"Deleted “second leak”$"))
    status, listed = api("GET", "/v1/keys.list", make_jwt(user))
    assert [k["id"] for k in listed["keys"]] == [kept["id"]], listed
    page.get_by_role("button", name="Delete kept", exact=True).click()
    dialog = page.get_by_role("dialog", name="Delete API key")
    expect(dialog).to_contain_text("Delete the key “kept”? Whatever uses it stops working at once.")
    expect(dialog.get_by_role("button", name="Delete key")).to_be_visible()
    axe(page, "no leaks left, deleting a live key", any_impact=True)


@check
def a_key_revoked_by_its_holder_says_so_without_a_banner(page):
    user = new_user("revoked-self")
    key = create_key(user, "old script", ["read"])
    # A disabled key can be revoked too; then it is revoked, not disabled.
    status, body = api("POST", "/v1/keys.update", make_jwt(user), {"id": key["id"], "enabled": False})
    assert status == 200, (status, body)
    revoke_by_holder(key["key"])
    assert verify_status(key["key"]) == (401, {"valid": False, "code": "key_revoked"})
    sign_in(page, user)
    item = key_item(page, "old script")
    expect(item.locator(".badge")).to_have_text(["Revoked"])
    expect(fact(item, "Status")).to_have_text("Revoked")
    expect(fact(item, "Revoked")).to_have_text(re.compile(r"^Revoked by its holder, .+"))
    expect(fact(item, "Found at")).to_have_count(0)
    expect(leaks(page)).to_be_empty()
    expect(leaks(page)).to_be_hidden()
    for action in ("Edit", "Roll"):
        expect(page.get_by_role("button", name=f"{action} old script", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Remove old script", exact=True)).to_be_visible()
    expect(page.locator("#count")).to_have_text("0 of 20 keys")
    expect(history(page).locator(".event-head").first).to_have_text(
        re.compile(r"Revoked \(by its holder\) “old script”$"))
    expect(history(page).first.locator(".event-detail")).to_have_count(0)
    shot(page, "revoked-by-holder", full_page=True)
    axe(page, "a key revoked by its holder", any_impact=True)


@check
def history_shows_revocations_and_where_a_leak_was_found(page):
    user = new_user("revoked-history")
    leaked = create_key(user, "leaked key")
    dropped = create_key(user, "dropped key")
    leak_alert((leaked["key"], LEAK_URL, "pull_request_comment"))
    revoke_by_holder(dropped["key"])
    sign_in(page, user)
    expect(history(page)).to_have_count(4)
    heads = history(page).locator(".event-head")
    expect(heads.nth(0)).to_have_text(re.compile(r"Revoked \(by its holder\) “dropped key”$"))
    expect(heads.nth(1)).to_have_text(re.compile(r"Revoked \(leaked\) “leaked key”$"))
    detail = history(page).nth(1).locator(".event-detail")
    expect(detail).to_have_text(f"found at {LEAK_URL} (pull request comment)")
    link = detail.get_by_role("link", name=LEAK_URL, exact=True)
    expect(link).to_have_attribute("href", LEAK_URL)
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    events = api_events(user)
    assert [(e["type"], e.get("reason")) for e in events[:2]] == [("revoked", "self"), ("revoked", "leaked")], events
    for i in (0, 1):
        expect(history(page).nth(i).locator("time")).to_have_attribute("datetime", events[i]["at"])
    shot(page, "history-revoked", full_page=True)
    axe(page, "history with revocations", any_impact=True)


@check
def history_shows_a_revoked_key_let_go_to_make_room(page):
    user = new_user("revoked-let-go")
    # 30 listed keys, 11 of them revoked: the next create lets the oldest revoked one go.
    keys = [create_key(user, f"key {i + 1}") for i in range(20)]
    leak_alert(*[(key["key"], None, None) for key in keys[:11]])
    for i in range(20, 30):
        create_key(user, f"key {i + 1}")
    sign_in(page, user)
    expect(page.locator("#count")).to_have_text("19 of 20 keys")
    expect(leaks(page).locator(".leaks-title")).to_have_text("11 keys of yours were found in public and revoked")
    generate_in_ui(page, "one more", ["read"])
    dialog, _ = read_secret(page)
    dialog.get_by_role("button", name="Done").click()
    expect(history(page).first).to_contain_text("Created “one more”")
    let_go = history(page).filter(has_text="Deleted (revoked) “key 1”")
    expect(let_go).to_have_count(1)
    expect(let_go.locator(".event-detail")).to_have_text("a revoked key, let go to make room for a new one")
    expect(key_heading(page, "key 1")).to_have_count(0)
    expect(leaks(page).locator("li")).to_have_count(10)
    axe(page, "history with a revoked key let go")


@check
def a_leak_place_that_is_no_web_address_and_a_name_with_markup_show_as_text(page):
    user = new_user("leaked-markup")
    name = "<img src=x onerror=window.__leak=1><b>bold</b>"
    key = create_key(user, name)
    # The API keeps no URL but an http(s) one: a javascript: one is dropped...
    leak_alert((key["key"], "javascript:window.__leak=2", "content"))
    assert listed_key(user, key["id"])["revoked"]["url"] is None
    # ... and were one listed anyway, the page would not make it a link.
    place = "javascript:window.__leak=3"

    def with_place(route):
        response = route.fetch()
        listed = response.json()
        for listed_key_ in listed["keys"]:
            listed_key_["revoked"]["url"] = place
        route.fulfill(response=response, json=listed)

    page.route(f"{BASE}/v1/keys.list", with_place)
    sign_in(page, user)
    banner = leaks(page)
    expect(banner.locator("li")).to_have_text(re.compile(f"^“{re.escape(name)}” was found at {re.escape(place)} and revoked "))
    expect(fact(key_item(page, name), "Found at")).to_have_text(place)
    assert page.locator("#leaks a, #keys a").count() == 0, "a javascript: place became a link"
    assert page.locator("#leaks img, #leaks b, #keys img, #keys b").count() == 0, "markup became elements"
    assert page.evaluate("window.__leak") is None, "the name or the place ran as script"
    axe(page, "a leak place that is no web address")


@check
def readable_on_a_desktop(page):
    user = "alice@example.com"  # no other check uses it; this screenshot is the README's
    used = create_key(user, "Production gateway", ["read", "write"])
    create_key(user, "Nightly export", ["read"])
    create_key(user, "Admin scripts", ["read", "write", "admin"])
    # Rolled with a day's grace, its new secret already in use: the list shows both.
    used = roll_key(user, used["id"], 86400)
    assert verify_status(used["key"])[0] == 200  # so one key shows when it was last used
    page.set_viewport_size({"width": 960, "height": 640})
    sign_in(page, user)
    expect(page.locator("#keys li")).to_have_count(3)
    expect(fact(page.locator("#keys li").first, "Last used")).not_to_have_text("Never")
    expect(page.locator("#keys li").first.locator(".old-key")).to_contain_text("Old key works until")
    shot(page, "list")
    axe(page, "list of three keys, desktop")


@check
def readable_at_320_px(page):
    user = new_user("narrow")
    create_key(user, "W" * 64, ["read", "write", "admin"])
    create_key(user, "A key with a long name that has to wrap on a phone", ["read"])
    page.set_viewport_size({"width": 320, "height": 640})
    sign_in(page, user)
    expect(page.locator("#keys li")).to_have_count(2)
    expect(history(page)).to_have_count(2)  # the 64-character name wraps there too
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 320, f"the page is {overflow} px wide at 320 px"
    for button in page.get_by_role("button").all():
        if button.is_visible():
            box = button.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    shot(page, "narrow", full_page=True)
    axe(page, "list at 320 px")
    page.get_by_role("button", name="Generate API Key").click()
    dialog = page.get_by_role("dialog", name="Generate API Key")
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    shot(page, "narrow-dialog")
    axe(page, "generate dialog at 320 px")
    dialog.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Edit " + "W" * 64, exact=True).click()
    dialog = page.get_by_role("dialog", name="Edit key")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    widths = dialog.evaluate("d => [d.scrollWidth, d.clientWidth]")
    assert widths[0] <= widths[1], f"the edit dialog's content is wider than it: {widths}"
    for control in dialog.get_by_role("button").all() + [dialog.get_by_label("Name")]:
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    shot(page, "narrow-edit")
    axe(page, "edit dialog at 320 px")


# ---- Running them ------------------------------------------------------------------------------


def main():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    # Assertions wait for the page as long as actions do: on a busy 2-core CI machine a save
    # (an update makes 12 store operations, each synced to disk) can take more than expect's
    # default 5 s, and a check must not fail for that.
    expect.set_options(timeout=15_000)
    passed = failed = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        cached = None  # the browser with the back-forward cache on, started when first needed
        for function in CHECKS:
            name = function.__name__
            runs_in = browser
            if name in BACK_FORWARD_CACHE:
                if cached is None:
                    cached = playwright.chromium.launch(
                        executable_path=CHROMIUM, ignore_default_args=["--disable-back-forward-cache"])
                runs_in = cached
            context = runs_in.new_context(viewport={"width": 1024, "height": 720},
                                          **CONTEXT_OPTIONS.get(name, {}))
            context.set_default_timeout(15_000)
            page = context.new_page()
            watch = Watch(page)
            try:
                function(page)
                assert not watch.problems, watch.problems
                passed += 1
                print(f"PASS  {name}", flush=True)
            except Exception as error:  # noqa: BLE001 - any failure of a check is reported
                failed += 1
                shot(page, f"failed-{name}", full_page=True)
                detail = traceback.format_exception_only(type(error), error)[-1].strip()
                print(f"FAIL  {name}: {detail[:1500]}", flush=True)
                traceback.print_exc(file=sys.stderr)
            finally:
                context.close()
        if cached is not None:
            cached.close()
        browser.close()
    serious = sum(1 for _, vs in AXE_STATES for v in vs if v["impact"] in ("serious", "critical"))
    other = sorted({f"{v['id']} ({v['impact']})" for _, vs in AXE_STATES for v in vs
                    if v["impact"] not in ("serious", "critical")})
    print(f"axe-core: {len(AXE_STATES)} states checked, {serious} serious or critical violations"
          + (f"; minor or moderate: {', '.join(other)}" if other else "; none of any impact"))
    for state, _ in AXE_STATES:
        print(f"  axe state: {state}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
