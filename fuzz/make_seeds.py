#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets (fuzz/seeds/<target>/) from the repository's
fixtures and the wire layouts. Run from anywhere; rerun after a fixture or layout changes."""
import os
import shutil
import struct

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
SEEDS = os.path.join(FUZZ, "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


AUDIT_LOGS = ["tests/data/audit/" + n for n in sorted(os.listdir(os.path.join(ROOT, "tests/data/audit")))]
AUDIT_LOGS.append("tests/data/bench/audit.log")

# audit_log: the audit fixtures as they are.
for rel in AUDIT_LOGS:
    put("audit_log", rel.replace("/", "_"), read(rel))

# audit_netlink: the fixtures' lines as netlink datagrams (nlmsghdr + "audit(...): ..." text).
TYPES = {"SYSCALL": 1300, "EXECVE": 1309, "PATH": 1302, "CWD": 1307, "PROCTITLE": 1327,
         "EOE": 1320, "USER_AUTH": 1100, "USER_CMD": 1123, "USER_LOGIN": 1112, "CRED_ACQ": 1103}


def nlmsg(ty, text, full_len=True):
    payload = text.encode() + b"\0"
    n = 16 + len(payload) if full_len else len(payload)
    msg = struct.pack("=IHHII", n, ty, 0, 0, 0) + payload
    return msg + b"\0" * ((-len(msg)) % 4)


for rel in AUDIT_LOGS[:3]:
    dgram = b""
    for line in read(rel).decode(errors="replace").splitlines():
        if not line.startswith("type=") or " msg=" not in line:
            continue
        rtype, rest = line[5:].split(" msg=", 1)
        dgram += nlmsg(TYPES.get(rtype, 1300), rest)
    put("audit_netlink", os.path.basename(rel) + ".bin", dgram)
put("audit_netlink", "payload-length-only.bin",
    nlmsg(1123, "audit(1.5:9): pid=1 msg='op=x exe=\"/usr/bin/sudo\" res=success'", False))

# event_decode: one record per kind shape, as the kernel lays them out (sentinel-common).
def record(kind, nr, ret, args, strs=(), blobs=(), flags=0):
    str_lens = [len(s) for s in strs] + [0] * (3 - len(strs))
    blob_lens = [len(b) for b in blobs] + [0] * (2 - len(blobs))
    tail = b"".join(strs) + b"".join(blobs)
    header = struct.pack("<QQIIIIIIIIIIII16s", 1000, 42, kind, 160 + len(tail), 100, 101, 1,
                         1000, 1000, 1000, 1000, 0xFFFFFFFF, flags, 0, b"bash")
    body = struct.pack("<q6QI3H2H5H", ret, *args, nr, *str_lens, *blob_lens, 0, 0, 0, 0, 0)
    assert len(header) == 80 and len(body) == 80
    return header + body + tail


SOCKADDR_IN = struct.pack("<H", 2) + struct.pack(">H", 4444) + bytes([10, 0, 0, 5]) + b"\0" * 8
SOCKADDR_IN6 = struct.pack("<H", 10) + struct.pack(">H", 443) + b"\0" * 4 + bytes(15) + b"\1" + b"\0" * 4
SOCKADDR_UN = struct.pack("<H", 1) + b"/run/x.sock\0"
seeds = {
    "exec": record(1, 59, 0, [2, 0, 0, 0, 0, 0],
                   [b"/usr/bin/curl", b"curl\0http://x\0", b"HISTFILE=/dev/null\0PATH=/bin\0"]),
    "fork": record(2, 0xFFFFFFFF, 0, [200, 200, 0, 0, 0, 0]),
    "exit": record(3, 0xFFFFFFFF, 0, [9, 0, 0, 0, 0, 0]),
    "prctl": record(4, 157, 0, [15, 0, 0, 0, 0, 0], [b"kworker\0"]),
    "connect4": record(20, 42, 0, [3, 0, 16, 0, 0, 0], [], [SOCKADDR_IN]),
    "connect6": record(20, 42, -111, [3, 0, 28, 0, 0, 0], [], [SOCKADDR_IN6]),
    "connect_unix": record(20, 42, 0, [3, 0, 14, 0, 0, 0], [], [SOCKADDR_UN]),
    "socket": record(21, 41, 3, [17, 3, 768, 0, 0, 0]),
    "bind": record(22, 49, 0, [3, 0, 16, 0, 0, 0], [], [SOCKADDR_IN]),
    "open": record(40, 257, 3, [0xFFFFFF9C, 0, 0o101, 0o644, 0, 0], [b"/etc/shadow"]),
    "rename": record(42, 316, 0, [0, 0, 0, 0, 0, 0], [b"/tmp/a", b"/etc/cron.d/a"]),
    "chmod": record(43, 90, 0, [0, 0o4755, 0, 0, 0, 0], [b"/tmp/sh"]),
    "memfd": record(45, 319, 4, [0, 1, 0, 0, 0, 0], [b"payload"]),
    "setuid": record(60, 105, 0, [0, 0, 0, 0, 0, 0]),
    "ptrace": record(63, 101, 0, [16, 1234, 0, 0, 0, 0]),
    "bpf": record(64, 321, 5, [5, 0, 0, 0, 0, 0], [b"prog"]),
    "mount": record(65, 165, 0, [0, 0, 0, 0, 0, 0], [b"/dev/sda1", b"/mnt", b"ext4"]),
    "kill": record(69, 62, 0, [1, 9, 0, 0, 0, 0]),
    "module": record(71, 313, 0, [3, 0, 0, 0, 0, 0], [b"/lib/modules/x.ko"]),
    "truncated": record(1, 59, 0, [1, 0, 0, 0, 0, 0], [b"/bin/sh", b"sh\0"], [], flags=3),
}
for name, data in seeds.items():
    put("event_decode", name + ".bin", data)

# ingest_json: a batch as an agent sends it, around the anomaly fixture.
anomaly = read("tests/data/explain/anomaly.json").decode()
snap = read("tests/data/explain/snapshot_before.json").decode()
put("ingest_json", "batch.json",
    '{"batch_id":"b-1","host":"web-1","anomalies":[%s],"snapshots":[%s],"fingerprints":[{"host":"web-1","time_ns":1}]}'
    % (anomaly, snap))
put("ingest_json", "empty.json", '{"batch_id":"b-2"}')

# config_toml: every TOML example in the README and docs/.
import re
for rel in ["README.md"] + ["docs/" + n for n in sorted(os.listdir(os.path.join(ROOT, "docs")))]:
    if not rel.endswith(".md"):
        continue
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", read(rel).decode(), re.S)):
        put("config_toml", "%s-%d.toml" % (os.path.basename(rel)[:-3], i), block)
put("config_toml", "small.toml", 'host = "web-1"\nstore = "/var/lib/sentinel/store.db"\n')

# proc_text: first byte selects the parser (see fuzz_targets/proc_text.rs).
put("proc_text", "proc-stat.txt", b"\0" + b"1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 12345 1000000 200 18446744073709551615\n")
put("proc_text", "status.txt", b"\1" + b"Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nNgid:\t0\nPid:\t42\nPPid:\t1\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t256\nGroups:\t4 27\nThreads:\t1\n")
put("proc_text", "meminfo.txt", b"\2" + b"MemTotal:       16303108 kB\nMemFree:         1209228 kB\nMemAvailable:    9123456 kB\n")
put("proc_text", "uptime.txt", b"\3" + b"12345.67 23456.78\n")
put("proc_text", "loadavg.txt", b"\4" + b"0.52 0.58 0.59 1/467 12345\n")
put("proc_text", "io.txt", b"\5" + b"rchar: 323934931\nwchar: 323929600\nsyscr: 632687\nsyscw: 632675\nread_bytes: 0\nwrite_bytes: 323932160\ncancelled_write_bytes: 0\n")
put("proc_text", "cgroup.txt", b"\6" + b"0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n")
put("proc_text", "passwd.txt", b"\7" + read("tests/data/detect/passwd"))
put("proc_text", "time.bin", b"\x08" + struct.pack("<q", 1_700_000_000_000))
bench = "tests/data/bench/"
put("proc_text", "bench-proc-stat.txt", b"\0" + read(bench + "proc-stat.txt"))
put("proc_text", "bench-proc-status.txt", b"\1" + read(bench + "proc-status.txt"))

# redact: the redaction corpus and policy commands, line by line and whole.
corpus = read("tests/data/explain/redaction_corpus.txt")
put("redact", "redaction_corpus.txt", corpus)
put("redact", "policy_commands.txt", read("tests/data/explain/policy_commands.txt"))
put("redact", "argv.bin", b"curl\0-H\0Authorization: Bearer abc.def.ghi\0https://user:pw@10.0.0.5/x")
put("redact", "passwd.txt", read("tests/data/detect/passwd"))
