#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora of the libFuzzer harnesses from the fixtures.

usage: tests/fuzz/make_seeds.py [OUTDIR]     (default: tests/fuzz/corpus)

One directory per harness, each file named by the SHA-1 of its bytes (as libFuzzer names
units), so running it again changes nothing unless a fixture changed.  Sources: the first
lines of tests/fixtures/sample/access.log, the JSON-lines fixtures, rules/*.yaml and
tests/fixtures/rules/*.yaml, keywatch.yaml, the pcaps of tests/fixtures/pcap/gen_pcaps.py,
plus a few hand-written inputs per harness for what the fixtures do not show (each
harness's input layout is described at the top of its .c file).  The corpora stay small
(well under 1 MB together): libFuzzer grows its own working copy from them.
"""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fuzz", "corpus")
SAMPLE_LINES = 40


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def put(harness, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def sample_lines():
    """Lines of the sample log: the first ones and every line with a key or a query."""
    lines = read("tests/fixtures/sample/access.log").splitlines()
    picked = lines[:SAMPLE_LINES // 2]
    picked += [l for l in lines if b"?" in l.split(b'"')[1]][:SAMPLE_LINES // 4]
    picked += [l for l in lines if re.search(rb'" "[^-"][^"]{20,}" ', l)][:SAMPLE_LINES // 4]
    return picked


def jsonl_lines():
    out = []
    d = os.path.join(ROOT, "tests", "fixtures", "jsonl")
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out.append((name, f.read().splitlines()))
    return out


def combined_fields(line):
    """addr, method, uri, user agent, key of a "keyed" line (None when not one)."""
    m = re.match(rb'(\S+) \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" \d+ \d+ "[^"]*" "([^"]*)"'
                 rb'(?: "([^"]*)")?', line)
    return m.groups() if m else None


def logfmt_seeds(lines):
    for l in lines[:20]:
        put("fuzz_logfmt", l)
    fmt = (b'log_format main escape=json \'$remote_addr - $remote_user [$time_local] '
           b'"$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" '
           b'"$http_authorization" $request_time $arg_api_key\';')
    put("fuzz_logfmt", b"\xff" + fmt + b"\n" + b'10.0.0.1 - - [03/Nov/2025:00:00:00 +0000] '
        b'"GET /a?api_key=k1 HTTP/1.1" 200 5 "-" "ua" "Bearer abc" 0.001 k1')
    put("fuzz_logfmt", b"\xff$remote_addr $time_iso8601 $request_uri $http_x_api_key\n"
        b"10.0.0.1 2025-11-03T00:00:00+00:00 /x?y=1 mb_abc")


def jsonl_seeds():
    for name, lines in jsonl_lines():
        put("fuzz_jsonl", b"\n".join(lines[:3]))
        for l in lines[:2]:
            put("fuzz_jsonl", l)


def capture_seeds():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/fixtures/pcap/gen_pcaps.py"),
                        tmp], check=True, stdout=subprocess.DEVNULL)
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name), "rb") as f:
                data = f.read()
            if len(data) <= 8192:
                put("fuzz_capture", data)


def keyid_seeds(lines):
    for i, l in enumerate(lines):
        f = combined_fields(l)
        if f is None:
            continue
        addr, method, uri, ua, key = f
        hdrs = b""
        if key and key != b"-":
            hdrs = [b"x-api-key:" + key, b"authorization:Bearer " + key,
                    b"@key:" + key][i % 3]
        put("fuzz_keyid", bytes([i % 8]) + b"\n".join(
            [uri, ua, b"api.example.com", addr, method, hdrs]))
    k = b"mb_3q2+7vbg1Nw0Oc2Y5FxRk8tq4ZzjL9pWbXaH0sKeM/I="
    hand = [
        b"\x00/api/card/1?api_key=" + k + b"&x=1\nua\nh\n10.0.0.1\nGET\n",
        b"\x01/v1/x?key=sk%5Flive%2Babcdefgh&sig=abc&password=pw\nua\nh\n::1\nPOST\n",
        b"\x02/api/\x01/items?token=\x01\nagent \x01\nh\n10.0.0.1, 10.0.0.2\nGET\n"
        b"authorization:Bearer " + k,
        b"\x03/p/\x01?a=\x01\n\x01\nh\n[2001:db8::1]\nGET\nx-token:  tok_0123456789abcdef  ",
        b"\x01/basic\nua\nh\n10.0.0.1:443\nGET\n"
        b"authorization:Basic bWJfdXNlcm5hbWVrZXk6cGFzc3dvcmQ=",
        b"\x01/t\nua\nh\n1.2.3.4\nGET\nauthorization:Token token=\"tk_0123456789\", realm=x",
        b"\x01/k\nua\nh\n1.2.3.4\nGET\nauthorization:apiKey ak_0123456789abcdef",
        b"\x00/kong/42\nokhttp\nh\n198.51.100.77\nGET\n@id:2f6946328ffc4946b8c9120704a4a155",
        b"\x00/arg?api_key=a%2Bb%2Fc%3D0123456789\nua\nh\n1.2.3.4\nGET\n"
        b"arg:api_key:a%2Bb%2Fc%3D0123456789",
        b"\x06/abcdefghij/\x01?api_key=\x01\nua\nh\n1.2.3.4\nGET\nx-api-key:0123456789abcdef",
        b"\x04/0123456789/?access_token=zz_0123456789abcdef\nua\nh\n1.2.3.4\nGET\n",
    ]
    for h in hand:
        put("fuzz_keyid", h)


def endpoint_seeds(lines):
    seen = set()
    for l in read("tests/fixtures/sample/access.log").splitlines():
        f = combined_fields(l)
        if f is None:
            continue
        shape = re.sub(rb"\d+", b"1", f[2])
        if shape not in seen and len(seen) < 60:
            seen.add(shape)
            put("fuzz_endpoint", f[2])
    for p in [b"/api/card/123/query", b"/u/123e4567-e89b-12d3-a456-426614174000/x",
              b"/d/2025-11-03", b"/o/5f2b8c9d0e1f2a3b4c5d", b"/t/AbCdEfGhIjKlMnOpQrStUv12",
              b"/s/" + b"x" * 70 + b"/y", b"/" + b"/seg" * 70, b"relative/path", b"",
              b"/a//b/?q#f", b"/%7E/%2F/caf%C3%A9#frag", b"/" + b"9" * 255]:
        put("fuzz_endpoint", p)


def syslog_seeds(lines):
    body = lines[1]
    rfc3164 = b"<190>Nov  3 00:00:00 web1 nginx: " + body
    rfc5424 = (b"<190>1 2025-11-03T00:00:00.000Z web1 nginx 123 access "
               b'[meta@1 a="b\\]c"][x@2 k="v"] \xef\xbb\xbf' + body)
    notag = b"<13>Nov  3 00:00:00 nginx: " + body
    put("fuzz_syslog", b"\xff\x00\x10" + rfc3164 + b"\n" + rfc5424 + b"\n")
    put("fuzz_syslog", b"\xff\x00\x07" + b"%d %s" % (len(rfc5424), rfc5424) +
        b"%d %s" % (len(notag), notag))
    put("fuzz_syslog", b"\x20\x01\x00" + b"%d %s\r\n" % (len(rfc3164), rfc3164) + rfc3164)
    put("fuzz_syslog", b"\x02\x00\x05" + b"12 short frame" + b"\n" + b"9999 " + b"x" * 40 +
        b"\n" + b"<34>1 - - - - - - msg\n")
    put("fuzz_syslog", b"\x40\x00\x03" + b"<999>bad\n<>x\n<0>\n<191>1 a b c d e\n\n\n")


def config_seeds():
    put("fuzz_config", read("keywatch.yaml"))
    hand = [
        b"",
        b"db: /tmp/k.db\nidentity:\n  headers: [X-Api-Key]\n  prefix_length: 16\n",
        b"ingest:\n  format: nginx\n  log_format: '$remote_addr [$time_local] \"$request\" "
        b"$status $http_x_api_key'\n  escape: json\n",
        b"ingest:\n  format: json\n  json:\n    preset: kong\n    key: request.headers.apikey\n"
        b"    time_format: epoch_ms\n    latency_unit: ms\n    header_fields:\n"
        b"      - {header: X-Key, path: request.headers.x-key}\n",
        b"sources:\n  - {path: /var/log/nginx/access.log, format: keyed, start_at: end}\n"
        b"  - {type: syslog, listen: 'udp://127.0.0.1:5514'}\n"
        b"  - {type: pcap, interface: lo, bpf: tcp port 80, snaplen: 65535}\n",
        b"sinks:\n  - {type: webhook, url: 'http://x/', headers: [{name: A, env: B}],"
        b" min_severity: high}\n  - {type: file, path: /tmp/a.jsonl}\n"
        b"  - {type: syslog, address: 'tcp://127.0.0.1:514'}\n",
        b"keys:\n  - {name: billing, prefix: mb_AbCd}\n"
        b"  - {name: ci, fingerprint: 0123456789abcdef0123456789abcdef}\n"
        b"rules: [builtin:default]\nrun: {commit_ms: 10, poll_ms: 100, log_level: debug}\n",
        b"identity:\n  unknown_key: 1\n",
    ]
    for h in hand:
        put("fuzz_config", h)


def rules_seeds():
    d = os.path.join(ROOT, "rules")
    for name in sorted(os.listdir(d)):
        if name.endswith(".yaml"):
            put("fuzz_rules", read(os.path.join("rules", name)))
    d = os.path.join(ROOT, "tests", "fixtures", "rules")
    for name in sorted(os.listdir(d)):
        put("fuzz_rules", read(os.path.join("tests", "fixtures", "rules", name)))
    hand = [
        b"scopes:\n  - {name: read, endpoints: ['GET /api/**', 'HEAD /api/*/x']}\n"
        b"grants:\n  - {keys: [mb_AbCd, 'fp:0123456789abcdef0123456789abcdef'],"
        b" scopes: [read]}\n"
        b"rules:\n  - {id: sv, type: scope_violation, scopes: [read]}\n"
        b"canaries: [mb_Canary1]\nrevoked: ['name:old']\n",
        b"rules:\n  - id: m\n    type: match\n    conditions:\n"
        b"      - {field: address, op: cidr, value: 10.0.0.0/8}\n"
        b"      - {field: user_agent, op: regex, value: '^(curl|wget)/[0-9.]+$'}\n"
        b"      - {field: status, op: prefix, value: '4'}\n"
        b"    exclude: {addresses: ['2001:db8::/32'], user_agents: [kube-probe],"
        b" endpoints: ['* /health']}\n",
        b"rules:\n  - {id: oh, type: off_hours, hours: '08:30-18:00', days: mon-fri,"
        b" timezone: '+01:00'}\n  - {id: v, type: volume, bytes: 2GiB, window: 1h}\n"
        b"  - {id: a, type: auth_failures, window: 30s, statuses: [401, 403, 429],"
        b" by: address}\n"
        b"  - {id: n, type: new_endpoint, per: set, endpoints: ['POST /api/*']}\n"
        b"  - {id: f, type: ip_fanout, max_addresses: 31, cooldown: 1d, action: revoke}\n",
    ]
    for h in hand:
        put("fuzz_rules", h)


def format_seeds(lines):
    put("fuzz_format", b"\n".join(lines[:20]) + b"\n")
    put("fuzz_format", b"\n".join(re.sub(rb' "[^"]*" [0-9.]+$', b"", l) for l in lines[:5]) +
        b"\n")
    for name, jl in jsonl_lines():
        put("fuzz_format", b"\n".join(jl[:2]) + b"\n")
    put("fuzz_format", b"\r\n\r\nnot a log\r\n")
    put("fuzz_format", b'{"msg":"no preset","token":"sk_live_0123456789abcdefghij"}\n')


def main():
    lines = sample_lines()
    logfmt_seeds(lines)
    jsonl_seeds()
    capture_seeds()
    keyid_seeds(lines)
    endpoint_seeds(lines)
    syslog_seeds(lines)
    config_seeds()
    rules_seeds()
    format_seeds(lines)


if __name__ == "__main__":
    main()
