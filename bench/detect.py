#!/usr/bin/env python3
"""Scores keywatch's alerts against a generator's ground truth (detection quality).

usage: detect.py TRUTH.json DB [--slack SECONDS] [--json]

For each injected incident: found when an alert of a matching rule type fired for the
incident's key with first_seen (event time) inside [window start, window end + slack].
Every other alert is counted as a false positive; noise keys are reported separately.
Exit status 0 when every incident was found.
"""
import argparse
import json
import sqlite3
import sys

MATCH = {
    "rate_spike": {"rate_spike"},
    "new_ips": {"new_source", "ip_fanout"},
    "auth_fail_burst": {"auth_failures"},
    "sequential_ids": {"enumeration"},
    "off_hours": {"off_hours"},
    "first_admin": {"new_endpoint", "scope_violation"},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("truth")
    ap.add_argument("db")
    ap.add_argument("--slack", type=int, default=900)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    truth = json.load(open(a.truth))
    db = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True)
    alerts = db.execute(
        "SELECT a.id, a.rule, a.type, k.prefix, a.first_seen, a.last_seen, a.count, a.summary"
        " FROM alerts a LEFT JOIN keys k ON k.id = a.key_id").fetchall()
    calls = db.execute("SELECT count(*) FROM calls").fetchone()[0]
    used = set()
    found = []
    for inc in truth["incidents"]:
        prefix = inc["api_key"][:7]
        lo = min(w["start_epoch"] for w in inc["windows"]) * 1_000_000
        hi = (max(w["end_epoch"] for w in inc["windows"]) + a.slack) * 1_000_000
        hits = [al for al in alerts
                if al[2] in MATCH[inc["type"]] and al[3] == prefix and lo <= al[4] <= hi]
        for h in hits:
            used.add(h[0])
        found.append({"type": inc["type"], "key": prefix, "found": bool(hits),
                      "alerts": [{"rule": h[1], "summary": h[7]} for h in hits]})
    noise = truth.get("noise", {})
    noise_keys = set()
    for group in ("k8s_rotating_ip_keys", "admin_keys"):
        noise_keys.update(k[:7] for k in noise.get(group, []))
    noise_keys.update(k[:7] for k in noise.get("cron_keys", {}))
    # Alerts on an incident's key during its window but of another kind (a sequential-id
    # walk is also a rate spike) are related, not false.
    related = set()
    for inc in truth["incidents"]:
        prefix = inc["api_key"][:7]
        lo = min(w["start_epoch"] for w in inc["windows"]) * 1_000_000
        hi = (max(w["end_epoch"] for w in inc["windows"]) + a.slack) * 1_000_000
        related.update(al[0] for al in alerts
                       if al[0] not in used and al[3] == prefix and lo <= al[4] <= hi)
    fps = [al for al in alerts if al[0] not in used and al[0] not in related]
    result = {
        "calls": calls,
        "incidents": len(found),
        "found": sum(f["found"] for f in found),
        "recall": (sum(f["found"] for f in found) / len(found)) if found else None,
        "related": len(related),
        "false_positives": len(fps),
        "fp_per_100k_calls": round(len(fps) * 100000 / calls, 3) if calls else None,
        "fp_on_noise_keys": sum(1 for f in fps if f[3] in noise_keys),
        "fp_by_rule": {},
        "missed": [f for f in found if not f["found"]],
    }
    for f in fps:
        result["fp_by_rule"][f[1]] = result["fp_by_rule"].get(f[1], 0) + 1
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print("incidents found %d/%d, related alerts %d, false positives %d (%.3f per 100k "
              "calls; %d on noise keys)"
              % (result["found"], result["incidents"], len(related), len(fps),
                 result["fp_per_100k_calls"] or 0, result["fp_on_noise_keys"]))
        for m in result["missed"]:
            print("  missed: %s key %s" % (m["type"], m["key"]))
        for rule, n in sorted(result["fp_by_rule"].items()):
            print("  fp %-22s %d" % (rule, n))
    return 0 if not result["missed"] else 1


if __name__ == "__main__":
    sys.exit(main())
