#!/usr/bin/env python3
"""Local mail peers for Mailroom's tests and demo.

An SMTP submission server (aiosmtpd: STARTTLS required, AUTH PLAIN/LOGIN, scripted answers by
recipient) relays every accepted message over LMTP into a private Dovecot, which serves it over
IMAP. Each recipient's local part becomes an IMAP folder of user inbox@example.test, so a test
reads back exactly the mail it sent. Prints one JSON line describing the peers, then answers commands on
standard input (see serve_commands) until it closes, so it never outlives the process that
started it.

Like Gmail and Microsoft, the server files every message it accepts from SENDER in SENDER's
"Sent" folder, so reconciliation can search it.

Scripted recipients (local part prefix):
  nouser...    550 5.1.1 at RCPT (bad recipient)
  tempfail...  421 4.7.0 at RCPT the first time for that address (throttling), then accepted
  softfail...  451 4.3.0 at RCPT the first time for that address (transient), then accepted
  dropdeliver... the first time: delivers, then drops the connection before answering DATA
  droplose...    the first time: drops the connection after DATA without delivering
  stall...       never answers RCPT (a worker killed while waiting has handed nothing over)
  bounceme...    relayed through a private Postfix, whose delivery fails: a real DSN (RFC 3464)
                 comes back to the sender's INBOX (root only; `postfix_port` null otherwise)
  stallbody...   delivers, then never answers DATA (a worker killed while waiting had sent it)
  slow-TAG-N...  answers DATA after 0.3 s; `stats` reports, per TAG, the most DATA phases
                 that were in flight at once (per-mailbox session caps are checked with it)
"""
import asyncio
import base64
import http.server
import imaplib
import json
import logging
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings

warnings.filterwarnings("ignore")
# aiosmtpd logs each login and a deprecation notice through its own logger: keep test output clean.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
# Clients killed mid-session (chaos runs) make asyncio log every write to the dead socket.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

# An AUTH XOAUTH2 line carries a whole JWT (well over aiosmtpd's 512/1001-byte defaults);
# Gmail and Microsoft accept such lines.
SMTP.line_length_limit = 16384
SMTP.command_size_limit = 16384

SENDER = "sender@example.test"
INBOX = "inbox@example.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def make_certs(d):
    """A private CA and a localhost certificate it signs (rustls refuses a bare self-signed CA
    used as a server certificate)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-days", "30", "-subj", "/CN=Mailroom Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    run("openssl", "req", *ec, "-subj", "/CN=localhost", "-keyout", f"{d}/key.pem", "-out", f"{d}/req.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", f"{d}/req.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", f"{d}/ext.cnf", "-out", f"{d}/cert.pem")


class Introspection(http.server.BaseHTTPRequestHandler):
    """RFC 7662 token introspection for Dovecot's oauth2 passdb (IMAP XOAUTH2): an access token
    is active when the OAuth server signed it and it has not expired; it belongs to SENDER."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        token = (form.get("token") or [""])[0]
        active = jwt_valid(token)
        STATS["imap_oauth_logins" if active else "imap_oauth_refused"] += 1
        body = json.dumps({"active": True, "email": SENDER} if active else {"active": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def start_introspection():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Introspection)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_dovecot(d, password, imap_port, lmtp_port, introspection_port):
    root = os.geteuid() == 0
    user = "nobody" if root else os.environ.get("USER", "nobody")
    group = "nogroup" if root else subprocess.check_output(["id", "-gn"], text=True).strip()
    for sub in ("run", "state", "mail"):
        os.makedirs(f"{d}/{sub}", exist_ok=True)
    with open(f"{d}/users", "w") as f:
        for login in (INBOX, SENDER):
            f.write(f"{login}:{{PLAIN}}{password}::::::\n")
    conf = f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
# Every test mailbox logs in as the same user from the same address; a real account's limit
# is per mailbox, so lift Dovecot's default of 10 connections per user and address.
mail_max_userip_connections = 1000
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = uid={user} gid={group} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
"""
    with open(f"{d}/dovecot.conf", "w") as f:
        f.write(conf)
    with open(f"{d}/oauth2.conf.ext", "w") as f:
        f.write(f"introspection_mode = post\nintrospection_url = http://127.0.0.1:{introspection_port}/introspect\n"
                "username_attribute = email\nactive_attribute = active\nactive_value = true\n")
    if root:
        run("chown", "-R", f"{user}:{group}", d)
    proc = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", f"{d}/dovecot.conf"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dovecot exited: {proc.stderr.read().decode()} {read(f'{d}/dovecot.log')}")
        try:
            socket.create_connection(("127.0.0.1", imap_port), timeout=1).close()
            socket.create_connection(("127.0.0.1", lmtp_port), timeout=1).close()
            # Gmail-like: the Sent folder exists before anything is sent.
            imap = imaplib.IMAP4("127.0.0.1", imap_port)
            imap.login(SENDER, password)
            imap.create("Sent")
            imap.logout()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("dovecot did not start listening within 20 s: " + read(f"{d}/dovecot.log"))


POSTFIX_MAIN = """compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
relay_domains = example.test
transport_maps = inline:{{ example.test=lmtp:inet:127.0.0.1:{lmtp} }}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {d}/log/maillog
maillog_file_prefixes = {d}/log
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
biff = no
"""


def start_postfix(d, lmtp_port):
    """A private Postfix (root only) relaying example.test into Dovecot over LMTP: the one peer
    that writes real RFC 3464 bounces. Returns its SMTP port, or None where it cannot run."""
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/postfix"):
        return None
    pd = f"{d}/postfix"
    for sub in ("queue", "data", "log"):
        os.makedirs(f"{pd}/{sub}", exist_ok=True)
    shutil.chown(f"{pd}/data", "postfix")
    port = free_port()
    with open(f"{pd}/main.cf", "w") as f:
        f.write(POSTFIX_MAIN.format(d=pd, lmtp=lmtp_port))
    master = read("/etc/postfix/master.cf")
    master = re.sub(r"^smtp(\s+)inet(\s+)n(\s+)-(\s+)y", f"127.0.0.1:{port} inet n - n", master, flags=re.M)
    # No chroot: the private queue is not laid out for one.
    master = re.sub(r"^([a-z0-9:.]+\s+(?:unix|inet|fifo|unix-dgram|pass)\s+[-yn]\s+[-yn]\s+)y", r"\1n", master, flags=re.M)
    with open(f"{pd}/master.cf", "w") as f:
        f.write(master)
    # postfix logs its start-up errors only to syslog: run it under a terminal to see them.
    run("script", "-qc", f"/usr/sbin/postfix -c {pd} start", "/dev/null")
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port
        except OSError:
            time.sleep(0.05)
    sys.stderr.write("peers: postfix did not start:\n" + read(f"{pd}/log/maillog")[-2000:])
    return None


def start_oauth(d):
    """The OAuth 2.0 server (oauth2-mock-server over TLS, see oauth.mjs), or None when Node or
    the package is missing. Returns (process, port)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    module = os.path.join(root, ".peers/node/node_modules/oauth2-mock-server/dist/index.mjs")
    if not shutil.which("node") or not os.path.exists(module):
        return None, None
    port = free_port()
    proc = subprocess.Popen(
        ["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "oauth.mjs"), module, str(port),
         f"{d}/cert.pem", f"{d}/key.pem", SENDER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        return None, None
    return proc, port


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def folder(address):
    local = address.split("@")[0].lower()
    return re.sub(r"[^a-z0-9-]", "-", local)[:60] or "unknown"


STATS = {"logins": 0, "oauth_logins": 0, "imap_oauth_logins": 0, "imap_oauth_refused": 0, "login_failures": 0, "accepted": 0, "dropped": [], "throttled": 0, "inflight_max": {}}
INFLIGHT = {}
OAUTH = None
OAUTH_PORT = None
CA_FILE = None
REFUSED = set()
FAULTS = {"drop": 0.0, "throttle": 0.0, "sink": 0.0}
RNG = random.Random(1)
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def b64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


JWKS = {}


def jwt_valid(token):
    """Checks an OAuth access token as a provider would: an RS256 JWT signed by the OAuth
    server's key (fetched from its /jwks) and not expired."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    try:
        head, body, sig = token.split(".")
        header, payload = json.loads(b64url(head)), json.loads(b64url(body))
        if payload.get("exp", 0) < time.time():
            return False
        if header.get("kid") not in JWKS:
            ctx = ssl.create_default_context(cafile=CA_FILE)
            with urllib.request.urlopen(f"https://localhost:{OAUTH_PORT}/jwks", context=ctx, timeout=5) as r:
                for k in json.load(r)["keys"]:
                    n, e = (int.from_bytes(b64url(k[x]), "big") for x in ("n", "e"))
                    JWKS[k["kid"]] = rsa.RSAPublicNumbers(e, n).public_key()
        JWKS[header["kid"]].verify(b64url(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:  # noqa: BLE001 - any malformed or unverifiable token is refused
        return False


class Handler:
    def __init__(self, lmtp_port):
        self.lmtp_port = lmtp_port
        self.seen = set()

    async def auth_XOAUTH2(self, server, args):
        """Gmail's XOAUTH2: `user=<address>^Aauth=Bearer <token>^A^A`, the token checked."""
        blob = args[1] if len(args) > 1 else await server.challenge_auth("", encode_to_b64=False)
        try:
            raw = base64.b64decode(blob).decode()
            fields = dict(f.split("=", 1) for f in raw.split("\x01") if "=" in f)
            user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        except Exception:  # noqa: BLE001
            user, token = "", ""
        if user == SENDER and jwt_valid(token):
            STATS["oauth_logins"] += 1
            return AuthResult(success=True, auth_data=user)
        STATS["login_failures"] += 1
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if FAULTS["throttle"] and RNG.random() < FAULTS["throttle"]:
            STATS["throttled"] += 1
            return "421 4.7.0 Too many messages, slow down"
        if local.startswith("nouser"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("stall") and not local.startswith("stallbody"):
            await asyncio.sleep(3600)
        for prefix, reply in (("tempfail", "421 4.7.0 Try again later"),
                              ("softfail", "451 4.3.0 Temporary local problem, try again")):
            if local.startswith(prefix) and address.lower() not in self.seen:
                self.seen.add(address.lower())
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def first_time(self, envelope, prefix):
        for r in envelope.rcpt_tos:
            if r.split("@")[0].lower().startswith(prefix) and ("data", r.lower()) not in self.seen:
                self.seen.add(("data", r.lower()))
                return True
        return False

    async def handle_DATA(self, server, session, envelope):
        tags = {r.split("@")[0].lower().rsplit("-", 1)[0] for r in envelope.rcpt_tos
                if r.lower().startswith("slow-")}
        for tag in tags:
            INFLIGHT[tag] = INFLIGHT.get(tag, 0) + 1
            STATS["inflight_max"][tag] = max(STATS["inflight_max"].get(tag, 0), INFLIGHT[tag])
        try:
            if tags:
                await asyncio.sleep(0.3)
            return await self.data(server, envelope)
        finally:
            for tag in tags:
                INFLIGHT[tag] -= 1

    async def data(self, server, envelope):
        if FAULTS["sink"]:
            # Benchmarks: accept and discard, so the engine, not Dovecot, is what is measured.
            STATS["accepted"] += 1
            return f"250 2.0.0 OK discarded {uuid.uuid4().hex[:12]}"
        bouncing = [r for r in envelope.rcpt_tos if r.lower().startswith("bounceme")]
        rcpts = [f"inbox+{folder(r)}@example.test" for r in envelope.rcpt_tos if r not in bouncing]
        # Mail from SENDER, or from one of its +tagged addresses (a workspace connects one
        # mailbox per address), is filed in SENDER's Sent folder.
        local, _, domain = (envelope.mail_from or "").lower().partition("@")
        if f"{local.split('+')[0]}@{domain}" == SENDER:
            rcpts.append(SENDER.replace("@", "+Sent@"))
        content = envelope.original_content

        def relay():
            # One LMTP transaction per recipient: smtplib does not read LMTP's per-recipient
            # replies to DATA.
            with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
                for rcpt in rcpts:
                    lmtp.sendmail(envelope.mail_from, [rcpt], content)
            # "bounceme" recipients go through Postfix, whose LMTP delivery to Dovecot fails
            # (no such user): Postfix then mails a real DSN back to the sender.
            if bouncing and self.postfix_port:
                with smtplib.SMTP("127.0.0.1", self.postfix_port) as smtp:
                    smtp.sendmail(envelope.mail_from, bouncing, content)

        chaos = FAULTS["drop"] and RNG.random() < FAULTS["drop"]
        deliver_anyway = RNG.random() < 0.5
        if self.first_time(envelope, "droplose") or (chaos and not deliver_anyway):
            self.record_drop(envelope, delivered=False)
            server.transport.abort()
            return "421 4.4.2 connection dropped (never seen by the client)"
        try:
            await asyncio.get_running_loop().run_in_executor(None, relay)
        except Exception as e:  # noqa: BLE001 - any relay failure is a temporary answer
            return f"451 4.3.0 relay to the mailbox failed: {e}"
        if any(r.lower().startswith("stallbody") for r in envelope.rcpt_tos):
            await asyncio.sleep(3600)
        if self.first_time(envelope, "dropdeliver") or chaos:
            self.record_drop(envelope, delivered=True)
            server.transport.abort()
            return "421 4.4.2 connection dropped (never seen by the client)"
        STATS["accepted"] += 1
        return f"250 2.0.0 OK queued as {uuid.uuid4().hex[:12]}"

    @staticmethod
    def record_drop(envelope, delivered):
        found = MESSAGE_ID.search(envelope.original_content or b"")
        message_id = found.group(1).decode() if found else None
        STATS["dropped"].append({"message_id": message_id, "delivered": delivered})


def main():
    d = tempfile.mkdtemp(prefix="mailroom-peers-")
    os.chmod(d, 0o755)
    password = "secret"
    make_certs(d)
    imap_port, lmtp_port, smtp_port, kms_port = free_port(), free_port(), free_port(), free_port()
    # moto's KMS server for the vault's AWS provider; it keeps its keys in memory. Started
    # first and not waited for: clients wait for its port.
    moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"),
                             "-H", "127.0.0.1", "-p", str(kms_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    introspection = start_introspection()
    dovecot = start_dovecot(d, password, imap_port, lmtp_port, introspection.server_address[1])
    postfix_port = start_postfix(d, lmtp_port)
    oauth, oauth_port = start_oauth(d)
    global OAUTH, OAUTH_PORT, CA_FILE
    OAUTH, OAUTH_PORT, CA_FILE = oauth, oauth_port, f"{d}/ca.pem"

    def authenticator(server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        pw = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
        # Leak tests log in with unique "canary-..." passwords, until refused (`refuse PW`).
        canary = pw.startswith("canary-") and pw not in REFUSED
        if login == SENDER and (pw == password or canary):
            STATS["logins"] += 1
            return AuthResult(success=True)
        STATS["login_failures"] += 1
        # handled=False makes aiosmtpd send our 535 instead of dropping the connection.
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
    Handler.postfix_port = postfix_port
    controller = Controller(Handler(lmtp_port), hostname="127.0.0.1", port=smtp_port, server_hostname="localhost",
                            tls_context=ctx, require_starttls=True, auth_require_tls=True,
                            auth_required=True, authenticator=authenticator)
    controller.start()
    # The same server with TLS from the first byte (port 465 style).
    smtps_port = free_port()
    smtps = Controller(Handler(lmtp_port), hostname="127.0.0.1", port=smtps_port, server_hostname="localhost",
                       ssl_context=ctx, auth_required=True, auth_require_tls=False, authenticator=authenticator)
    smtps.start()

    stopping = threading.Event()

    def stop(*_):
        if stopping.is_set():
            return
        stopping.set()
        controller.stop()
        smtps.stop()
        moto.terminate()
        if oauth:
            oauth.terminate()
        if postfix_port:
            subprocess.run(["/usr/sbin/postfix", "-c", f"{d}/postfix", "stop"], capture_output=True)
        dovecot.terminate()
        try:
            dovecot.wait(10)
        except subprocess.TimeoutExpired:
            dovecot.kill()
        shutil.rmtree(d, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    print(json.dumps({
        "smtp_host": "localhost", "smtp_port": smtp_port, "smtps_port": smtps_port, "imap_port": imap_port, "lmtp_port": lmtp_port, "kms_port": kms_port, "postfix_port": postfix_port, "oauth_port": oauth_port,
        "ca_file": f"{d}/ca.pem", "dir": d,
        "sender": SENDER, "sender_password": password, "inbox": INBOX, "inbox_password": password,
    }), flush=True)
    try:
        serve_commands()
    finally:
        stop()


def serve_commands():
    """Answers commands on stdin, one JSON line each, until stdin closes:
    `stats` (counters, and the messages dropped after DATA) and
    `faults drop=P throttle=P sink=0|1 seed=N` (random faults for chaos runs; sink accepts and
    discards, for benchmarks), `refuse PASSWORD` (a canary password stops logging in) and
    `oauth CMD` (passed to the OAuth server, see oauth.mjs)."""
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "faults":
            for word in words[1:]:
                key, _, value = word.partition("=")
                if key == "seed":
                    RNG.seed(int(value))
                elif key in FAULTS:
                    FAULTS[key] = float(value)
            print(json.dumps({"faults": FAULTS}), flush=True)
        elif words[0] == "oauth" and OAUTH:
            OAUTH.stdin.write(" ".join(words[1:]) + "\n")
            OAUTH.stdin.flush()
            print(OAUTH.stdout.readline().strip(), flush=True)
        elif words[0] == "refuse" and len(words) == 2:
            REFUSED.add(words[1])
            print(json.dumps({"refused": len(REFUSED)}), flush=True)
        elif words[0] == "stats":
            print(json.dumps(STATS), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {words[0]}"}), flush=True)


if __name__ == "__main__":
    main()
