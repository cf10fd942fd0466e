"""A scripted browser for Roundcube (tests/real_pods/roundcube.rs), run in a
client pod as `python3 - STATE COMMAND ARGS...` with this file on stdin.

It keeps Roundcube's cookies and request token in the STATE file between
calls, and sends the cookies to whichever address it talks to (the Service or
one pod), as one browser session would. Every answer names the pod that
served it (the image's X-Served-By header). It prints one JSON object and
exits 0, or prints what went wrong to stderr and exits 1.

Commands:
  page URL                      the login page (form and token) answers
  login URL USER PASSWORD       logs in; keeps the session and request token
  list URL COUNT SUBJECT        COUNT mailbox lists, each showing SUBJECT
  send URL PODS TO FILE_SIZE    uploads an attachment through URL, then sends
                                the message through a pod (of PODS, name=url,
                                comma-separated) other than the one that took
                                the upload
"""

import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.parse
import uuid


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


class Browser:
    def __init__(self, state_path):
        self.state_path = state_path
        self.cookies = {}
        self.token = None
        if os.path.exists(state_path):
            with open(state_path) as f:
                state = json.load(f)
            self.cookies, self.token = state["cookies"], state["token"]

    def save(self):
        with open(self.state_path, "w") as f:
            json.dump({"cookies": self.cookies, "token": self.token}, f)

    def request(self, method, url, body=None, headers=None):
        """One request, no redirects followed; returns (status, served_by, location, text)."""
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            self.keep_cookie(header)
        conn.close()
        return response.status, response.getheader("X-Served-By", "?"), response.getheader("Location"), text

    def keep_cookie(self, header):
        pair, *attributes = [p.strip() for p in header.split(";")]
        name, _, value = pair.partition("=")
        expired = value in ("", "-del-") or any(
            a.lower().startswith("max-age=") and a[8:].lstrip("-").isdigit() and int(a[8:]) <= 0 for a in attributes
        )
        if expired:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value


def form(fields):
    return urllib.parse.urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"}


def find(pattern, text, what):
    match = re.search(pattern, text, re.S)
    if not match:
        fail(f"no {what} in: {text[:2000]}")
    return match.group(1)


def login_page(browser, base):
    status, served_by, _, text = browser.request("GET", base + "?_task=login")
    if status != 200:
        fail(f"login page: HTTP {status} from {served_by}: {text[:1000]}")
    return served_by, find(r'name="_token" value="([^"]+)"', text, "login form token")


def page(browser, base):
    served_by, _ = login_page(browser, base)
    return {"served_by": served_by}


def login(browser, base, user, password):
    # A fresh browser: a live session would send the login page to the mailbox.
    browser.cookies, browser.token = {}, None
    form_by, token = login_page(browser, base)
    body, headers = form(
        {"_token": token, "_task": "login", "_action": "login", "_timezone": "UTC", "_url": "", "_user": user, "_pass": password}
    )
    status, login_by, location, text = browser.request("POST", base + "?_task=login", body, headers)
    if status != 302 or "_task=mail" not in (location or ""):
        fail(f"login: HTTP {status} from {login_by}, Location {location}: {text[:2000]}")
    status, mail_by, _, text = browser.request("GET", base + "?_task=mail&_mbox=INBOX")
    if status != 200:
        fail(f"mail view after login: HTTP {status} from {mail_by}: {text[:1000]}")
    browser.token = find(r'"request_token":"([^"]+)"', text, "request token")
    browser.save()
    return {"form": form_by, "login": login_by, "mail": mail_by}


def ajax_headers(browser):
    return {"X-Roundcube-Request": browser.token, "X-Requested-With": "XMLHttpRequest"}


def list_mail(browser, base, count, subject):
    served = []
    for i in range(count):
        url = base + f"?_task=mail&_action=list&_mbox=INBOX&_page=1&_remote=1&_={int(time.time() * 1000)}"
        status, served_by, _, text = browser.request("GET", url, headers=ajax_headers(browser))
        if status != 200 or subject not in text:
            fail(f"list {i + 1} of {count}: HTTP {status} from {served_by}, no '{subject}': {text[:2000]}")
        served.append(served_by)
    browser.save()
    return {"served_by": served}


def multipart(field, filename, data):
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def send(browser, base, pods, to, size):
    status, compose_by, location, text = browser.request("GET", base + "?_task=mail&_action=compose")
    if status == 302 and location:
        # Roundcube opens a compose session (its id in the session) and redirects to it.
        status, compose_by, _, text = browser.request("GET", urllib.parse.urljoin(base, location))
    if status != 200:
        fail(f"compose: HTTP {status} from {compose_by}: {text[:1000]}")
    compose_id = find(r'"compose_id":"([^"]+)"', text, "compose id")
    identity = find(r'name="_from"[^>]*>.*?<option value="(\d+)"', text, "sender identity")
    token = find(r'name="_token" value="([^"]+)"', text, "compose form token")

    data = os.urandom(size)
    filename = "report.bin"
    body, headers = multipart("_attachments[]", filename, data)
    headers.update(ajax_headers(browser))
    upload_id = f"upload{int(time.time() * 1000)}"
    url = base + f"?_task=mail&_action=upload&_id={compose_id}&_uploadid={upload_id}&_from=compose&_remote=1"
    status, upload_by, _, text = browser.request("POST", url, body, headers)
    if status != 200 or "add2attachment_list" not in text:
        fail(f"upload: HTTP {status} from {upload_by}: {text[:2000]}")

    # Pinned by pod address: the send must reach a replica other than the upload's.
    others = [(name, url) for name, url in (p.split("=", 1) for p in pods.split(",")) if name != upload_by]
    if not others:
        fail(f"no pod other than {upload_by} in {pods}")
    pod_name, pod_url = others[0]
    subject = f"Attachment {upload_id}"
    fields = {
        "_token": token, "_task": "mail", "_action": "send", "_id": compose_id, "_from": identity,
        "_to": to, "_cc": "", "_bcc": "", "_replyto": "", "_followupto": "", "_subject": subject,
        "_message": "The attachment was uploaded to another replica.", "_is_html": "0", "_framed": "1",
        "_draft": "", "_draft_saveid": "", "_store_target": "", "_priority": "0", "editorSelector": "plain",
    }
    body, headers = form(fields)
    status, send_by, _, text = browser.request("POST", pod_url + "?_task=mail&_unlock=1&_framed=1", body, headers)
    if status != 200 or "sent_successfully" not in text:
        fail(f"send through {pod_name}: HTTP {status} from {send_by}: {text[:2000]}")
    return {
        "compose": compose_by, "upload": upload_by, "send": send_by, "subject": subject,
        "filename": filename, "size": size, "sha256": hashlib.sha256(data).hexdigest(),
    }


def main():
    state, command, *args = sys.argv[1:]
    browser = Browser(state)
    if command == "page":
        result = page(browser, *args)
    elif command == "login":
        result = login(browser, *args)
    elif command == "list":
        result = list_mail(browser, args[0], int(args[1]), args[2])
    elif command == "send":
        result = send(browser, args[0], args[1], args[2], int(args[3]))
    else:
        fail(f"unknown command {command}")
    print(json.dumps(result))


main()
