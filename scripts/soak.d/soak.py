"""The chaos soak (scripts/soak): both services under a mixed load, two server processes on one
database, while a seeded scheduler injects faults; then the checks, printed as tables.

Environment: SOAK_SECONDS (1200), SOAK_SEED (random; printed), SOAK_MEMBERS (300),
SOAK_USERS (200), SOAK_THREADS (12), SOAK_WARMUP (300 s of load without faults; each
server's RSS at its end is the baseline the RSS at the end of the soak is held to).
Run through scripts/soak, which builds the release binary and sets the paths.
"""
import collections
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import fakes  # noqa: E402

BIN = os.environ["SOAK_BIN"]
WORK = os.environ["SOAK_WORK"]
DB = "ensemble_soak"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
SECONDS = float(os.environ.get("SOAK_SECONDS", "1200"))
WARMUP = float(os.environ.get("SOAK_WARMUP", "300"))
SEED = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))
MEMBERS = int(os.environ.get("SOAK_MEMBERS", "300"))
USERS = int(os.environ.get("SOAK_USERS", "200"))
THREADS = int(os.environ.get("SOAK_THREADS", "12"))
PORTS = {"A": 8101, "B": 8102}
WECHAT_PORT, SMTP_PORT = 8103, 8104
CLUSTER = os.environ.get("SOAK_CLUSTER", "")

ENV = dict(
    os.environ,
    DATABASE_URL=DB_URL,
    ENSEMBLE_JWT_SECRET="soak-secret-soak-secret",
    ENSEMBLE_WECHAT_API=f"http://127.0.0.1:{WECHAT_PORT}",
    ENSEMBLE_SMTP_URL=f"smtp://127.0.0.1:{SMTP_PORT}",
    ENSEMBLE_SMTP_TIMEOUT="5",
    ENSEMBLE_MAIL_INTERVAL="1",
    ENSEMBLE_TODAY="2026-09-01",
    ENSEMBLE_WRITE_LIMIT="0",
    ENSEMBLE_CAMPUS_WRITE_LIMIT="0",
    ENSEMBLE_LOGIN_LIMIT_ADDRESS="0",
    ENSEMBLE_LOGIN_LIMIT_NAME="0",
    ENSEMBLE_LOGIN_LIMIT_NAME_ADDRESS="0",
    RUST_LOG="warn",
)


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def psql(sql, db=DB):
    out = subprocess.run(
        ["psql", "-At", "-h", "127.0.0.1", "-U", "postgres", db, "-c", sql],
        capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return out.stdout.strip()


def cli(*args, check=True):
    out = subprocess.run([BIN, *args], env=ENV, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise RuntimeError(f"ensemble {' '.join(args)}: {out.stderr.strip()}")
    return out


# ---------------------------------------------------------------- the servers

class Server:
    def __init__(self, name):
        self.name, self.port = name, PORTS[name]
        self.proc = None
        self.lock = threading.Lock()
        self.restarts = 0
        # RSS after the warm-up of the first process; a process restarted by a fault is held to
        # it too (same binary, same load).
        self.baseline = None

    def start(self):
        env = dict(ENV, ENSEMBLE_LISTEN=f"127.0.0.1:{self.port}")
        err = open(os.path.join(WORK, f"server-{self.name}.log"), "a")
        # SOAK_WRAP_A / SOAK_WRAP_B: a command to run that server under (a profiler:
        # `heaptrack -o /tmp/a`), for finding where its memory goes.
        wrap = os.environ.get(f"SOAK_WRAP_{self.name}", "").split()
        self.proc = subprocess.Popen([*wrap, BIN, "serve"], env=env, stdout=err, stderr=err)
        self.started_at = time.time()

    def wait_up(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def signal(self, sig):
        with self.lock:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.restarts += 1
            self.start()

    def caches(self):
        """`ensemble_cache_entries` of /metrics: each bounded in-process cache's entries."""
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        except (OSError, http.client.HTTPException):
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("ensemble_cache_entries{"):
                name = line.split('cache="', 1)[1].split('"', 1)[0] if 'cache="' in line else line
                out[name] = int(float(line.rsplit(" ", 1)[1]))
        return out

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return 0
        return 0


SERVERS = {name: Server(name) for name in PORTS}

# ---------------------------------------------------------------- what happened

lock = threading.Lock()
statuses = collections.Counter()          # (status class or code) -> count
by_route = collections.Counter()          # (method route, status) -> count
acked_request_ids = []                    # x-request-id of every 2xx write
created_absences = []                     # ids from 201 POST /absence/
last_profile = {}                         # campus user id -> last acknowledged name
unavailable = []                          # (time, status, server, route) for 5xx and resets
first_2xx_after = {}                      # fault index -> seconds to the first 2xx after it
erased_members, erased_users = set(), set()
cancelled_absences = set()               # ids of 204 DELETE /absence/<id>/
cancel_asked = set()                     # ids a DELETE was sent for (its answer may be lost)
HELD = 4
ADMIN, BLOCK = [None], [None]             # the superuser's token, the block of every organisation
ORGS = 20
ORGANISATIONS = {}                        # owner (user id) -> organisation id
spent, season = {}, [0]                   # member -> the season their quota ran out in
faults = []                               # (start, end, kind, detail)
stop = threading.Event()


def record_fault(start, end, kind, detail=""):
    with lock:
        faults.append((start, end, kind, detail))


def overlapping(t):
    """The faults in force around time t (with a few seconds' slack after each)."""
    return [f[2] for f in faults if f[0] - 1 <= t <= (f[1] or time.time()) + 5]


class Client:
    def __init__(self):
        self.conns = {}

    def request(self, server, method, path, token=None, body=None, route=None):
        route = route or path
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "JWT " + token
        data = json.dumps(body).encode() if body is not None else None
        t = time.time()
        for attempt in (1, 2):
            conn = self.conns.get(server)
            reused = conn is not None
            try:
                if conn is None:
                    conn = self.conns[server] = http.client.HTTPConnection(
                        "127.0.0.1", PORTS[server], timeout=90)
                conn.request(method, path, data, headers)
                r = conn.getresponse()
                raw = r.read()
                status, rid, retry_after = r.status, r.getheader("x-request-id"), r.getheader("retry-after")
                break
            except (OSError, http.client.HTTPException) as e:
                self.conns.pop(server, None)
                conn.close()
                # A kept-alive connection the server had closed while idle: once more on a
                # new one. (Should the server have died mid-request instead, the request is
                # sent twice; the checks only count what was answered 2xx.)
                if attempt == 1 and reused and isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    continue
                with lock:
                    statuses["connection"] += 1
                    unavailable.append((t, "connection", server, f"{method} {route}"))
                return None, None, None
        with lock:
            statuses[status] += 1
            by_route[(f"{method} {route}", status)] += 1
            if status >= 500:
                unavailable.append((t, status, server, f"{method} {route}", retry_after, raw[:200]))
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        return status, answer, rid


# ---------------------------------------------------------------- set-up

def setup():
    log(f"seed {SEED} (SOAK_SEED={SEED} repeats this schedule)")
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", db="postgres")
    cli("migrate")
    with open(os.path.join(WORK, "roster.csv"), "w") as f:
        f.write("name,section,role\nboss1,wind,manager\nboss2,stringed,manager\n")
        for i in range(1, MEMBERS + 1):
            f.write(f"m{i},{('stringed', 'wind', 'percussion')[i % 3]},member\n")
    cli("roster", "import", os.path.join(WORK, "roster.csv"))
    cli("roster", "notify", "add", "office@example.org")
    cli("admin", "create", "soak", "--email", "soak@example.org", "--password", "soak-password-1")
    cli("season", "start")
    for s in SERVERS.values():
        s.start()
    for s in SERVERS.values():
        assert s.wait_up(), f"server {s.name} did not start"
    c = Client()
    members, users = {}, {}
    for name in ["boss1", "boss2"] + [f"m{i}" for i in range(1, MEMBERS + 1)]:
        status, answer, _ = c.request("A", "POST", "/account/login/", body={"name": name, "code": "c-" + name})
        assert status == 200, (name, status, answer)
        members[name] = answer["token"]
    for i in range(USERS):
        status, answer, _ = c.request("B", "POST", "/login/", body={"code": f"c-u{i}", "userInfo": {"nickName": f"u{i}"}})
        assert status == 200, (i, status, answer)
        users[answer["id"]] = answer["token"]
    log(f"{len(members)} members and {len(users)} campus users logged in")
    # A superuser, a block, and an organisation founded by each of the first users (an
    # application, approved).
    status, answer, _ = c.request("A", "POST", "/adminLogIn/", body={"username": "soak", "password": "soak-password-1"})
    assert status == 200, (status, answer)
    ADMIN[0] = answer["token"]
    status, answer, _ = c.request("A", "POST", "/blocks/", ADMIN[0], {"name": "soak"})
    assert status == 201, (status, answer)
    BLOCK[0] = answer["id"]
    for user in list(users)[:ORGS]:
        name = f"org-u{user}"
        status, answer, _ = c.request("A", "POST", "/organizations/applications/", users[user],
                                      {"name": name, "description": "soak", "user": user, "block": BLOCK[0]})
        assert status == 202, (status, answer)
        status, answer, _ = c.request("A", "PUT", f"/organizations/applications/verifications/{answer['id']}/",
                                      ADMIN[0], {"status": 1})
        assert status == 200, (status, answer)
        status, answer, _ = c.request("A", "GET", f"/organizations/?org={name}", users[user])
        assert status == 200, (status, answer)
        ORGANISATIONS[user] = answer["results"]["id"]
    log(f"{len(ORGANISATIONS)} organisations founded")
    return members, users


# ---------------------------------------------------------------- the load

def worker(index, members, users):
    rng = random.Random(SEED * 1000 + index)
    c = Client()
    names = [n for n in members if n.startswith("m") and int(n[1:]) % THREADS == index]
    mine = [u for u in users if u % THREADS == index]
    day = 0
    # Each member holds at most HELD absences, cancelling the oldest before applying again:
    # the data (and so every list an endpoint answers) stays the same size however long the
    # soak runs, and what the server holds in memory must too.
    own = collections.defaultdict(collections.deque)
    follows, appointed = set(), set()     # (user, org) this thread's users follow; (org, person) appointed
    applied = 0

    def acked(rid):
        with lock:
            acked_request_ids.append(rid)

    def toggle(server, held, key, token, path, body, query):
        """A relation switched on (POST `path`) or off (DELETE `path?query`), as `held` says."""
        if key in held:
            status, _, _ = c.request(server, "DELETE", f"{path}?{query}", token, route=path)
            if status == 204:
                held.discard(key)
        else:
            status, _, rid = c.request(server, "POST", path, token, body)
            if status == 201:
                acked(rid)
            if status in (201, 400):  # 400: on already (an answer lost to a fault)
                held.add(key)

    while not stop.is_set():
        server = rng.choice("AB")
        op = rng.random()
        try:
            if op < 0.25:
                name = rng.choice(names)
                if name in erased_members or spent.get(name) == season[0]:
                    continue
                if len(own[name]) >= HELD:
                    absence = own[name][0]
                    with lock:
                        cancel_asked.add(absence)  # gone if this commits, answered or not
                    status, _, rid = c.request(server, "DELETE", f"/absence/{absence}/", members[name],
                                               route="/absence/<id>/")
                    if status == 204:
                        with lock:
                            acked_request_ids.append(rid)
                            cancelled_absences.add(absence)
                        own[name].popleft()
                    elif status == 404:  # cancelled already (an answer lost to a fault)
                        own[name].popleft()
                    continue
                day += 1
                date = f"{2027 + day // 300}-{1 + (day // 28) % 12:02d}-{1 + day % 28:02d}"
                status, answer, rid = c.request(server, "POST", "/absence/", members[name],
                                                {"reason": f"soak {index}-{day}", "time_absence": date, "type": "全体排练"})
                if status == 201:
                    with lock:
                        acked_request_ids.append(rid)
                        created_absences.append(answer["id"])
                    own[name].append(answer["id"])
                elif status == 403:
                    spent[name] = season[0]
            elif op < 0.40:
                boss = rng.choice(["boss1", "boss2"])
                status, answer, _ = c.request(server, "GET", "/manager/future/", members[boss])
                if status == 200 and answer:
                    absence = rng.choice(answer)
                    status, _, rid = c.request(server, "PUT", f"/manager/{absence['id']}/", members[boss],
                                               {"result": f"r{rng.randrange(10**9)}", "permission": rng.random() < 0.7},
                                               route="/manager/<id>/")
                    if status == 200:
                        with lock:
                            acked_request_ids.append(rid)
            elif op < 0.55:
                user = rng.choice(mine)
                if user in erased_users:
                    continue
                name = f"u{user}-{rng.randrange(10**9)}"
                status, _, rid = c.request(server, "PUT", f"/users/{user}/", users[user],
                                           {"name": name, "sign": "soak"}, route="/users/<id>/")
                if status == 200:
                    with lock:
                        acked_request_ids.append(rid)
                        last_profile[user] = name
            elif op < 0.60:
                name = rng.choice(names)
                if name not in erased_members:
                    c.request(server, "POST", "/account/login/", body={"name": name, "code": "c-" + name})
            elif op < 0.65:
                user = rng.choice(mine)
                if user not in erased_users:
                    c.request(server, "POST", "/login/", body={"code": f"c-u{user}", "userInfo": {"nickName": f"u{user}"}})
            elif op < 0.70:
                # Follow an organisation, or stop following it.
                user = rng.choice(mine)
                org = rng.choice(list(ORGANISATIONS.values()))
                if user not in erased_users:
                    toggle(server, follows, (user, org), users[user], "/users/followed_organizations/",
                           {"org": org, "person": user}, f"user={user}&org={org}")
            elif op < 0.72:
                # An owner appoints a manager, or dismisses them.
                owners = [u for u in mine if u in ORGANISATIONS and u not in erased_users]
                if not owners:
                    continue
                owner = rng.choice(owners)
                org, person = ORGANISATIONS[owner], rng.choice(list(users))
                if person not in erased_users and person != owner:
                    toggle(server, appointed, (org, person), users[owner], "/organizations/managers/",
                           {"org": org, "person": person}, f"user={person}&org={org}")
            elif op < 0.725:
                # A verification code by mail (through the outbox).
                user = rng.choice(mine)
                if user not in erased_users:
                    status, _, rid = c.request(server, "POST", "/sendVerify/", users[user],
                                               {"email": f"u{user}@school.example.edu"})
                    if status == 200:
                        acked(rid)
            elif op < 0.73:
                user = rng.choice(mine)
                if user not in erased_users:
                    status, _, rid = c.request(server, "POST", "/feedbacks/", users[user],
                                               {"feedback": f"soak {rng.randrange(10**9)}", "contact": "soak"})
                    if status == 201:
                        acked(rid)
            elif op < 0.735:
                # An application to found an organisation, refused by the superuser (the number
                # of organisations stays the same).
                user = rng.choice(mine)
                if user in erased_users:
                    continue
                applied += 1
                status, answer, rid = c.request(server, "POST", "/organizations/applications/", users[user],
                                                {"name": f"tmp-{index}-{applied}", "description": "soak",
                                                 "user": user, "block": BLOCK[0]})
                if status == 202:
                    acked(rid)
                    status, _, rid = c.request(server, "PUT", f"/organizations/applications/verifications/{answer['id']}/",
                                               ADMIN[0], {"status": 2},
                                               route="/organizations/applications/verifications/<id>/")
                    if status == 200:
                        acked(rid)
            elif op < 0.745:
                # A member changes the reason of one of their absences.
                name = rng.choice(names)
                if name in erased_members or not own[name]:
                    continue
                absence = rng.choice(own[name])
                status, _, rid = c.request(server, "PUT", f"/absence/{absence}/", members[name],
                                           {"reason": f"changed {rng.randrange(10**9)}"}, route="/absence/<id>/")
                if status == 200:
                    acked(rid)
            else:
                path = rng.choice(["/manager/next/", "/manager/", "/manager/history/", "/absence/",
                                   "/organizations/?limit=20", "/users/<id>/", "/organizations/managers/",
                                   "/users/followed_organizations/<id>/"])
                if path == "/organizations/managers/":
                    user = rng.choice(mine)
                    if user not in erased_users:
                        c.request(server, "GET", path, users[user])
                    continue
                if path == "/users/followed_organizations/<id>/":
                    user = rng.choice(mine)
                    if user not in erased_users:
                        c.request(server, "GET", f"/users/followed_organizations/{user}/", users[user], route=path)
                    continue
                if path == "/organizations/?limit=20":
                    user = rng.choice(mine)
                    if user not in erased_users:
                        c.request(server, "GET", path, users[user])
                elif path == "/users/<id>/":
                    user = rng.choice(mine)
                    if user not in erased_users:
                        c.request(server, "GET", f"/users/{user}/", users[user], route=path)
                elif path == "/absence/":
                    name = rng.choice(names)
                    if name not in erased_members:
                        c.request(server, "GET", path, members[name])
                else:
                    c.request(server, "GET", path, members[rng.choice(["boss1", "boss2"])])
        except Exception as e:  # a bug in the driver must not look like a server fault
            log(f"worker {index}: {e!r}")
            time.sleep(0.1)


# ---------------------------------------------------------------- the faults

KINDS = ["kill9", "sigterm", "pg_restart", "terminate_all", "held_transaction", "table_lock",
         "smtp_silent", "smtp_refuse", "wechat_silent", "wechat_refuse", "rebuild", "erasure"]
# SOAK_KINDS: a comma-separated subset of KINDS to inject ("none": load alone).
if os.environ.get("SOAK_KINDS"):
    KINDS = [k for k in os.environ["SOAK_KINDS"].split(",") if k in KINDS]


def schedule():
    """The faults and their moments: a function of the seed and of SOAK_SECONDS, SOAK_WARMUP
    and SOAK_KINDS alone (same seed and settings, same schedule)."""
    rng = random.Random(SEED)
    plan, t = [], WARMUP
    kinds = []
    while KINDS:
        if not kinds:
            kinds = KINDS[:]
            rng.shuffle(kinds)
        t += rng.uniform(8, 30)
        if t > SECONDS - 60:
            return plan
        kind = kinds.pop()
        plan.append((round(t, 1), kind, rng.choice("AB"), rng.randrange(10**6)))
    return plan


def healthy_2xx(server, since, timeout=120):
    """Seconds from `since` to the first 2xx `server` answers."""
    c = Client()
    end = time.time() + timeout
    while time.time() < end:
        status, _, _ = c.request(server, "GET", "/healthz")
        if status == 200:
            return time.time() - since
        time.sleep(0.05)
    return None


def caught_up_after(since, timeout=300):
    """Seconds from `since` until every checkpoint is at the log's head as of now."""
    end = time.time() + timeout
    head = None
    while time.time() < end:
        try:
            if head is None:
                head = psql("SELECT coalesce(max(transaction_id), 0) FROM events")
            behind = psql(
                "SELECT count(*) FROM projection_checkpoints c "
                f"WHERE c.transaction_id < {head} AND EXISTS (SELECT 1 FROM events e WHERE e.transaction_id = {head})")
            if behind == "0":
                return time.time() - since
        except Exception:
            pass
        time.sleep(0.2)
    return None


recovery = collections.defaultdict(list)   # what -> [seconds]


def inject(kind, server_name, n, members, users, smtp, wechat):
    start = time.time()
    server = SERVERS[server_name]
    detail = ""
    if kind == "kill9":
        server.signal(signal.SIGKILL)
        detail = server_name
        took = healthy_2xx(server_name, start)
        recovery["first 2xx after kill -9"].append(took)
    elif kind == "sigterm":
        server.signal(signal.SIGTERM)
        detail = server_name
        recovery["first 2xx after SIGTERM"].append(healthy_2xx(server_name, start))
    elif kind == "pg_restart":
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", CLUSTER.split()[0], CLUSTER.split()[1], "restart"],
                       check=True, capture_output=True, timeout=120)
        recovery["first 2xx after a PostgreSQL restart"].append(healthy_2xx(server_name, start))
        recovery["read models caught up after a PostgreSQL restart"].append(caught_up_after(start))
    elif kind == "terminate_all":
        psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{DB}' AND pid <> pg_backend_pid()")
        recovery["read models caught up after terminating every session"].append(caught_up_after(start))
    elif kind == "held_transaction":
        hold = 20 + n % 21
        detail = f"{hold} s"
        psql(f"BEGIN; SELECT pg_current_xact_id(); SELECT pg_sleep({hold}); COMMIT;")
        recovery["read models caught up after a held transaction"].append(caught_up_after(time.time()))
    elif kind == "table_lock":
        table = ["orchestra_absences", "campus_users", "events"][n % 3]
        hold = 5 + n % 6
        detail = f"{table}, {hold} s"
        psql(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({hold}); COMMIT;")
    elif kind in ("smtp_silent", "smtp_refuse", "wechat_silent", "wechat_refuse"):
        fake = smtp if kind.startswith("smtp") else wechat
        hold = 15 + n % 26
        detail = f"{hold} s"
        fake.set(kind.split("_")[1])
        stop.wait(hold)
        fake.set("ok")
    elif kind == "rebuild":
        cli("projections", "rebuild", "--all")
    elif kind == "erasure":
        if n % 2 == 0:
            candidates = sorted(set(members) - erased_members - {"boss1", "boss2"})
            name = candidates[n % len(candidates)]
            cli("roster", "forget", name)
            with lock:
                erased_members.add(name)
            detail = "roster forget"
        else:
            candidates = sorted(set(users) - erased_users)
            user = candidates[n % len(candidates)]
            with lock:
                erased_users.add(user)
            status, _, _ = Client().request(server_name, "DELETE", f"/users/{user}/", users[user], route="/users/<id>/")
            detail = f"DELETE /users/<id>/ -> {status}"
    record_fault(start, time.time(), kind, detail)
    log(f"fault {kind} {detail} ({time.time() - start:.1f} s)")


def operator():
    """What an operator does in the normal course: a new season now and then (quotas full
    again, so that members keep applying)."""
    while not stop.wait(45):
        try:
            cli("season", "start")
            season[0] += 1
        except Exception as e:
            log(f"season start: {e!r}")


def scheduler(plan, t0, members, users, smtp, wechat):
    """Each fault at its moment, on a thread of its own: a long one (a held transaction, a
    silent fake) is still in force when the next ones come, so faults combine."""
    running = []

    def one(kind, server_name, n):
        try:
            inject(kind, server_name, n, members, users, smtp, wechat)
        except Exception as e:
            # Usually another fault cut it short (every session terminated, PostgreSQL
            # restarted while a transaction was held): it was in force until then.
            log(f"fault {kind} ended with an error: {e!r}")
            record_fault(time.time(), time.time(), kind, f"ended with an error: {e}")

    for at, kind, server_name, n in plan:
        if stop.wait(max(0, t0 + at - time.time())):
            break
        t = threading.Thread(target=one, args=(kind, server_name, n), daemon=True)
        t.start()
        running.append(t)
    for t in running:
        t.join()


# ---------------------------------------------------------------- the checks

def read_models():
    tables = psql("SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_tables "
                  "WHERE schemaname = 'public' AND (tablename LIKE 'orchestra\\_%' OR tablename LIKE 'campus\\_%')").split()
    return {t: psql(f"SELECT t::text FROM {t} t ORDER BY 1") for t in tables}


def checks(users, smtp, rss_end):
    rows = []

    def check(label, ok, detail=""):
        rows.append((label, "ok" if ok else "FAILED", detail))

    # Every acknowledged write is in the log.
    logged = set(psql("SELECT DISTINCT metadata->>'request_id' FROM events").split("\n"))
    missing = [r for r in acked_request_ids if r not in logged]
    check("every acknowledged write (2xx) is in the log", not missing,
          f"{len(acked_request_ids)} acknowledged, {len(missing)} missing")
    # ... and in the read models.
    present = set(psql("SELECT string_agg(id::text, ' ') FROM orchestra_absences").split())
    lost = [a for a in created_absences if a not in cancel_asked and str(a) not in present]
    back = [a for a in cancelled_absences if str(a) in present]
    check("every acknowledged absence is in the read models, and no cancelled one", not lost and not back,
          f"{len(created_absences)} created, {len(cancelled_absences)} cancelled; {len(lost)} missing, {len(back)} back")
    c = Client()
    wrong = 0
    for user, name in last_profile.items():
        if user in erased_users:
            continue
        status, answer, _ = c.request("A", "GET", f"/users/{user}/", users[user], route="/users/<id>/")
        if status != 200 or answer.get("name") != name:
            wrong += 1
    check("every user's last acknowledged profile edit is what GET /users/<id>/ shows", wrong == 0,
          f"{len(last_profile)} users, {wrong} differ")
    # A rebuild gives the same rows.
    before = read_models()
    cli("projections", "rebuild", "--all")
    after = read_models()
    differ = [t for t in before if before[t] != after.get(t)]
    check("a rebuild gives the same rows as the live read models", not differ,
          f"{len(before)} tables, {sum(len(v.splitlines()) for v in before.values())} rows" + (f"; differ: {differ}" if differ else ""))
    # The chain.
    out = cli("events", "verify", check=False)
    check("events verify passes", out.returncode == 0, (out.stdout + out.stderr).strip().splitlines()[-1] if (out.stdout + out.stderr).strip() else "")
    # Mail: every outbox row sent (or set aside because its person was erased), each by exactly
    # one accepted message.
    pending = psql("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL "
                   "AND (failed_at IS NULL OR last_error IS DISTINCT FROM 'erased')")
    sent = int(psql("SELECT count(*) FROM mail_outbox WHERE sent_at IS NOT NULL"))
    covered, twice = 0, 0
    for message_id, times in smtp.message_ids.items():
        parts = message_id.strip("<>").split(".")
        covered += int(parts[3].split("@")[0]) if parts[1] == "digest" else 1
        twice += times - 1
    check("every mail went exactly once (by Message-ID at the SMTP fake)",
          pending == "0" and covered == sent and twice == 0,
          f"{sent} outbox rows sent, {pending} not; {len(smtp.message_ids)} messages covering {covered} rows; {twice} accepted twice"
          + "".join(f" (again at {time.strftime('%H:%M:%S', time.localtime(t))}, during "
                    f"{'+'.join(sorted(set(overlapping(t)))) or 'no fault'})" for t, _ in smtp.twice))
    # Nobody erased is named by a later event.
    named = psql(
        "SELECT count(*) FROM events e JOIN personal_keys k ON k.forgotten_at IS NOT NULL "
        "JOIN LATERAL (SELECT max(position) AS p FROM events x WHERE x.event_type IN ('MemberForgotten', 'UserDeleted') "
        "  AND x.payload::text ~ ('\\m' || split_part(k.subject, ':', 2) || '\\M')) erasure ON true "
        "WHERE e.position > erasure.p AND (e.metadata->>'actor' = k.subject OR e.payload::text LIKE '%' || k.subject || '%')")
    check("no event names an erased person after their erasure", named == "0",
          f"{len(erased_members)} members and {len(erased_users)} users erased; {named} later events name them")
    # Never a 500; every 503 says when to come back.
    fives = statuses[500]
    check("no 500 was ever answered", fives == 0, f"{fives} answers were 500")
    bare = [u for u in unavailable if u[1] == 503 and not u[4]]
    check("every 503 carries Retry-After", not bare, f"{statuses[503]} answers were 503, {len(bare)} without")
    # Memory: each server against its RSS at the end of the warm-up.
    ok = all(end <= warm * 1.2 for end, warm, _ in rss_end.values() if warm)
    check("each server's RSS at the end is within 20 % of its RSS after warm-up", ok,
          ", ".join(f"{name}: {warm // 1024 if warm else '-'} -> {end // 1024} MiB (process up {age:.0f} s)"
                    for name, (end, warm, age) in rss_end.items()))
    return rows


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()


def main():
    try:
        run()
    finally:
        for s in SERVERS.values():
            if s.proc and s.proc.poll() is None:
                s.proc.terminate()
                try:
                    s.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()


def run():
    for port in [*PORTS.values(), WECHAT_PORT, SMTP_PORT]:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            sys.exit(f"port {port} is taken (a soak still running, or its leftovers): nothing was started")
        except OSError:
            pass
    wechat = fakes.Wechat().start(WECHAT_PORT)
    smtp = fakes.Smtp().start(SMTP_PORT)
    members, users = setup()
    plan = schedule()
    log(f"{len(plan)} faults scheduled over {SECONDS:.0f} s: " + ", ".join(f"{k}@{t}" for t, k, _, _ in plan))
    t0 = time.time()
    rss = {}
    threads = [threading.Thread(target=worker, args=(i, members, users), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    sched = threading.Thread(target=scheduler, args=(plan, t0, members, users, smtp, wechat), daemon=True)
    sched.start()
    threading.Thread(target=operator, daemon=True).start()
    while time.time() < t0 + SECONDS:
        time.sleep(1)
        for s in SERVERS.values():
            if s.baseline is None and time.time() > t0 + WARMUP:
                s.baseline = s.rss_kib()
                s.caches_then = s.caches()
            if int(time.time() - t0) % 30 == 0:
                rss.setdefault(s.name, []).append(s.rss_kib() // 1024)
    stop.set()
    for t in threads:
        t.join()
    sched.join()
    smtp.set("ok")
    wechat.set("ok")
    log("load stopped; waiting for the read models and the mail to settle")
    for s in SERVERS.values():
        s.wait_up()
    caught_up_after(time.time())
    end = time.time() + 180
    while time.time() < end and psql("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL") != "0":
        time.sleep(0.5)
    time.sleep(2)
    rss_end = {s.name: (s.rss_kib(), s.baseline, time.time() - s.started_at) for s in SERVERS.values()}
    for s in SERVERS.values():
        s.caches_now = s.caches()
    results = checks(users, smtp, rss_end)

    print()
    print(f"seed {SEED}, {SECONDS:.0f} s, {THREADS} load threads, {MEMBERS} members, {USERS} campus users, two servers")
    print()
    kinds = collections.Counter(f[2] for f in faults)
    table(("fault", "injected"), [(k, kinds[k]) for k in KINDS])
    table(("answers", "count"), [(str(k), v) for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))])
    table(("refusals (4xx) by route", "status", "count"),
          [(route, status, v) for (route, status), v in sorted(by_route.items()) if 400 <= status < 500])
    for name, samples in rss.items():
        print(f"RSS of server {name} every 30 s (MiB): {' '.join(map(str, samples))}")
    for s in SERVERS.values():
        then, now = getattr(s, "caches_then", {}) or {}, s.caches_now
        print(f"caches of server {s.name} (entries after warm-up -> at the end): "
              + ", ".join(f"{k} {then.get(k, '-')} -> {v}" for k, v in sorted(now.items())))
    writes = len(acked_request_ids)
    print(f"writes acknowledged: {writes} ({writes / SECONDS:.0f}/s)")
    print()
    blamed = collections.Counter()
    for item in unavailable:
        kinds_then = overlapping(item[0])
        blamed[(str(item[1]), "+".join(sorted(set(kinds_then))) or "(none)")] += 1
    table(("unavailable (5xx, connection refused or reset)", "during", "count"),
          [(k[0], k[1], v) for k, v in sorted(blamed.items())])
    alone = [u for u in unavailable if u[1] != "connection" and not overlapping(u[0])]
    if alone:
        print("5xx answered while no fault was in force (the first 10):")
        for u in alone[:10]:
            print(f"  {time.strftime('%H:%M:%S', time.localtime(u[0]))} {u[1]} server {u[2]} {u[3]}: {u[5]!r}")
        print()
    table(("recovery", "times", "mean s", "max s"),
          [(k, len(v), f"{sum(x for x in v if x is not None) / max(1, len([x for x in v if x is not None])):.2f}",
            f"{max((x for x in v if x is not None), default=0):.2f}" + (" (some never)" if None in v else ""))
           for k, v in recovery.items()])
    table(("check", "result", "detail"), results)
    failed = [r for r in results if r[1] != "ok"]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed (seed {SEED})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
