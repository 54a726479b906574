"""Log N campus users in through POST /login/ (the fake WeChat answers `c-X` with `o-X`);
print one `id<TAB>token` line each."""
import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

base, count = sys.argv[1], int(sys.argv[2])


def login(i):
    body = json.dumps({"code": f"c-u{i}", "userInfo": {"nickName": f"u{i}"}}).encode()
    req = urllib.request.Request(base + "/login/", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        answer = json.load(r)
        return answer["id"], answer["token"]


with ThreadPoolExecutor(16) as pool:
    for user, token in pool.map(login, range(count)):
        print(f"{user}\t{token}")
