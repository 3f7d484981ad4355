#!/usr/bin/env python3
"""Runs one command and prints what the deploying machine spent on it, as one line:

    wall=<s> pss_mb=<peak MB> rss_mb=<peak MB> cpu=<s> procs=<peak> fds=<peak>
    all_cpu=<s> forks=<n> rc=<status>

wall: elapsed seconds. pss_mb: the peak, over samples every INTERVAL seconds (default
0.1), of the sum of Pss (/proc/<pid>/smaps_rollup: shared pages counted once, split among
those sharing them) of the command and all its descendants; rss_mb the same with Rss
(shared pages counted in each). cpu: user + system seconds of the command and every
descendant it waited for (wait4's rusage: cargo ship reaps its ssh masters, the floor's
shell its ssh clients). procs: the most processes in the tree at one sample; fds: the most
open file descriptors one process of it held at one sample (what `ulimit -n` bounds).
all_cpu: the whole machine's busy seconds (/proc/stat: all but idle and iowait) over the
run, which on a testbed counts the hosts' sshd, shells and tar too; forks: processes the
whole machine started meanwhile (/proc/stat's `processes`). Both count whatever else runs
on the machine: read them on a quiet one.

    measure.py [--interval 0.1] -- CMD ARGS...
"""
import os, subprocess, sys, time


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def tree(root):
    seen, todo = [], [root]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    return seen


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rollup(pid):
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def machine():
    """(busy seconds, processes started) of the whole machine so far."""
    busy = forks = 0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                busy = sum(v[:8]) - v[3] - v[4]  # user nice system idle iowait irq softirq steal
            elif line.startswith("processes "):
                forks = int(line.split()[1])
    return busy / os.sysconf("SC_CLK_TCK"), forks


def main():
    args = sys.argv[1:]
    interval = 0.1
    if args[:1] == ["--interval"]:
        interval = float(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    busy0, forks0 = machine()
    t0 = time.perf_counter()
    child = subprocess.Popen(args)
    peak_pss = peak_rss = peak_procs = peak_fds = 0
    status = None
    while status is None:
        pids = tree(child.pid)
        sums = [rollup(p) for p in pids]
        peak_pss = max(peak_pss, sum(s[0] for s in sums))
        peak_rss = max(peak_rss, sum(s[1] for s in sums))
        peak_procs = max(peak_procs, len(pids))
        peak_fds = max([peak_fds] + [fds(p) for p in pids])
        deadline = time.perf_counter() + interval
        while time.perf_counter() < deadline:
            pid, st, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                status = (st, usage)
                break
            time.sleep(0.01)
    wall = time.perf_counter() - t0
    busy1, forks1 = machine()
    st, usage = status
    rc = os.waitstatus_to_exitcode(st)
    print(
        f"wall={wall:.3f} pss_mb={peak_pss / 1024:.1f} rss_mb={peak_rss / 1024:.1f} "
        f"cpu={usage.ru_utime + usage.ru_stime:.3f} procs={peak_procs} fds={peak_fds} "
        f"all_cpu={busy1 - busy0:.2f} forks={forks1 - forks0} rc={rc}",
        flush=True,
    )


if __name__ == "__main__":
    main()
