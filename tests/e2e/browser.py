"""Drives the auth-center's hosted pages in Debian's Chromium, headless, with Playwright.

Spoken to over stdin and stdout by tests/e2e/browser.rs, one JSON line each way: the test
asks for a step ("sign_in", "end_session", ...), this script does it as a person would
(typing, clicking, on a phone-sized screen) and answers what it saw; the test checks the
effects at the demo-service and in the auth-center between steps.

Throughout, it records every console error and uncaught page error, and every document
response without a Content-Security-Policy; "finish" reports them.

Environment:
  BROWSER_E2E_BASE      the auth-center, e.g. http://127.0.0.1:PORT
  BROWSER_E2E_CHROMIUM  the browser binary (Debian's /usr/bin/chromium)
  SCREENSHOTS_DIR       if set, a PNG of each page is written there (docs/screenshots)
"""

import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["BROWSER_E2E_BASE"]
CHROMIUM = os.environ["BROWSER_E2E_CHROMIUM"]
SHOTS = os.environ.get("SCREENSHOTS_DIR", "")
PHONE = {"width": 390, "height": 844}
# What Chromium 12x on a phone says; the devices page names the device from it.
PHONE_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)

console_errors = []
documents_without_csp = []
csp_seen = []


def watch(page):
    def on_console(message):
        if message.type == "error":
            console_errors.append(f"{page.url}: {message.text}")

    def on_response(response):
        if response.request.resource_type != "document":
            return
        csp = response.headers.get("content-security-policy")
        if csp:
            csp_seen.append(csp)
        else:
            documents_without_csp.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: console_errors.append(f"{page.url}: {error}"))
    page.on("response", on_response)


def shot(page, name, full_page=True):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=full_page)


def sign_in(page, step):
    page.goto(f"{BASE}/account/sign-in")
    # The labels name the fields: the form is filled the way a screen reader user finds it.
    page.get_by_label("Username").fill(step["username"])
    page.get_by_label("Password").fill(step["password"])
    if step.get("shot"):
        shot(page, step["shot"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{BASE}/account/devices")
    expect(page.get_by_role("heading", name="Your devices", level=1)).to_be_visible()
    return {"url": page.url}


def wrong_password(page, step):
    page.goto(f"{BASE}/account/sign-in")
    page.get_by_label("Username").fill(step["username"])
    page.get_by_label("Password").fill("not the password at all")
    before = len(console_errors)
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    # Chromium logs the refused form's 401 as a failed load; that one, and nothing else, is
    # expected here.
    expected = "Failed to load resource: the server responded with a status of 401"
    during = console_errors[before:]
    del console_errors[before:]
    console_errors.extend(e for e in during if expected not in e)
    if not any(expected in e for e in during):
        raise AssertionError(f"no 401 for the wrong password: {during}")
    # The username is kept, the password is not.
    expect(page.get_by_label("Username")).to_have_value(step["username"])
    expect(page.get_by_label("Password")).to_have_value("")
    shot(page, "sign-in-error")
    return {"alert": alert.inner_text()}


def devices(page, step):
    page.goto(f"{BASE}/account/devices")
    items = page.locator("li.device")
    names = [h.inner_text() for h in items.locator("h2").all()]
    if step.get("shot"):
        shot(page, step["shot"])
    return {"devices": names}


def end_session(page, step):
    page.goto(f"{BASE}/account/devices")
    item = page.locator("li.device").filter(
        has=page.locator(f'input[name="sid"][value="{step["sid"]}"]')
    )
    expect(item).to_have_count(1)
    item.get_by_role("button", name="End the session").click()
    status = page.get_by_role("status")
    expect(status).to_contain_text("The session was ended")
    expect(page.locator(f'input[name="sid"][value="{step["sid"]}"]')).to_have_count(0)
    shot(page, "devices-ended")
    return {"notice": status.inner_text()}


def change_password(page, step):
    page.goto(f"{BASE}/account/password")
    new = page.get_by_label("New password", exact=True)
    feedback = page.locator("#new-password-feedback")
    # The script's feedback, before anything is sent: too short, then long enough.
    new.fill("short")
    expect(feedback).to_contain_text("Too short")
    shot(page, "password-feedback")
    page.get_by_label("Current password").fill(step["current"])
    new.fill(step["new"])
    expect(feedback).to_contain_text("Long enough")
    page.get_by_label("New password, again").fill(step["new"])
    shot(page, "password")
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(f"{BASE}/account/devices?notice=password-changed")
    expect(page.get_by_role("status")).to_contain_text("Your password was changed")
    return {"url": page.url}


def sign_out(page, step):
    page.goto(f"{BASE}/account/devices")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{BASE}/account/sign-in?notice=signed-out")
    expect(page.get_by_role("status")).to_contain_text("You have signed out")
    shot(page, "signed-out")
    # The session's cookies are gone: the devices page sends the browser to sign in.
    page.goto(f"{BASE}/account/devices")
    expect(page).to_have_url(f"{BASE}/account/sign-in")
    return {"url": page.url}


def force_logout(page, step):
    page.goto(f"{BASE}/account/admin/users")
    page.get_by_label("Search usernames").fill(step["username"])
    page.get_by_role("button", name="Search").click()
    user = page.locator("li.user").filter(
        has=page.get_by_role("heading", name=step["username"], exact=True)
    )
    expect(user).to_have_count(1)
    shot(page, "admin-users")
    user.get_by_role("button", name=f"Force logout of {step['username']}").click()
    expect(page.get_by_role("status")).to_contain_text("sessions were ended")
    return {"url": page.url}


def visit(page, step):
    response = page.goto(f"{BASE}{step['path']}")
    if step.get("shot"):
        # The first screen only: a long list makes a large picture.
        shot(page, step["shot"], full_page=False)
    return {"status": response.status if response else None}


def keyboard_sign_in(page, step):
    """Signs in with the keyboard alone: the username has the focus, the skip link is
    before it, Tab leads to the password, Enter sends."""
    page.goto(f"{BASE}/account/sign-in")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(step["username"])
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(step["password"])
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{BASE}/account/devices")
    return {"url": page.url}


STEPS = {
    "sign_in": sign_in,
    "keyboard_sign_in": keyboard_sign_in,
    "wrong_password": wrong_password,
    "devices": devices,
    "end_session": end_session,
    "change_password": change_password,
    "sign_out": sign_out,
    "force_logout": force_logout,
    "visit": visit,
}


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport=PHONE, user_agent=PHONE_AGENT)
        page = context.new_page()
        watch(page)
        print(json.dumps({"ready": browser.version}), flush=True)
        for line in sys.stdin:
            step = json.loads(line)
            name = step["step"]
            if name == "finish":
                print(
                    json.dumps(
                        {
                            "console_errors": console_errors,
                            "documents_without_csp": documents_without_csp,
                            "csp": sorted(set(csp_seen)),
                        }
                    ),
                    flush=True,
                )
                break
            try:
                answer = STEPS[name](page, step)
                answer["ok"] = True
            except Exception as error:  # the test prints it and fails
                answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)
        context.close()
        browser.close()


if __name__ == "__main__":
    main()
