"""Log every name of a roster CSV in (through the API, which binds WeChat: Roster commands);
print one `name<TAB>token` line each."""
import csv
import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

base, roster = sys.argv[1], sys.argv[2]
names = [row["name"] for row in csv.DictReader(open(roster))]


def login(name):
    body = json.dumps({"name": name, "code": "c-" + name}).encode()
    req = urllib.request.Request(base + "/account/login/", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return name, json.load(r)["token"]


with ThreadPoolExecutor(16) as pool:
    for name, token in pool.map(login, names):
        print(f"{name}\t{token}")
