#!/usr/bin/env python3
"""Where a `RUNTIME run` of /bin/true spends its time, phase by phase, for
several runtimes on the same bundle (README, Performance).

    scripts/start-phases.py BUNDLE RUNTIME... [-n 10]

Each run is traced with `strace --seccomp-bpf -f -ttt`, stopping only at the
syscalls that mark a phase: the runtime's own execve (t=0), the execve of its
init, pivot_root, the execve of /bin/true, and the runtime's exit. Tracing
slows every process start down (each clone is followed), so compare the
shape, not the absolute numbers, and only within one run of this script.
"""
import argparse
import os
import statistics
import subprocess
import tempfile

PHASES = [
    ("runtime CLI: Go start, spec, state, cgroups, clone + exec of the init", "start", "init_exec"),
    ("init: runtime start, config, namespaces, mounts up to pivot_root", "init_exec", "pivot_root"),
    ("init: finalize, credentials, capabilities, seccomp, wait for start, exec", "pivot_root", "exec_true"),
    ("process runs; runtime waits, deletes (cgroups, state) and exits", "exec_true", "end"),
]


def trace(runtime, bundle, root, cid, out):
    cmd = ["strace", "--seccomp-bpf", "-f", "-ttt", "-o", out,
           "-e", "trace=execve,pivot_root,exit_group",
           "--", runtime, "--root", root, "run", cid]
    subprocess.run(cmd, cwd=bundle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    marks, execs = {}, []
    with open(out) as f:
        lines = [l.split(None, 2) for l in f if l.strip()]
    t0 = float(lines[0][1])
    for _, ts, call in (l for l in lines if len(l) == 3):
        t = (float(ts) - t0) * 1000
        if call.startswith("execve("):
            execs.append(t)
            if '"/bin/true"' in call or '"/usr/bin/true"' in call:
                marks["exec_true"] = t
        elif call.startswith("pivot_root("):
            marks.setdefault("pivot_root", t)
    marks["start"] = 0.0
    marks["init_exec"] = execs[1] if len(execs) > 1 else None
    marks["end"] = (float(lines[-1][1]) - t0) * 1000
    return marks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("runtimes", nargs="+")
    ap.add_argument("-n", type=int, default=10)
    a = ap.parse_args()
    results = {rt: [] for rt in a.runtimes}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.n):
            for rt in a.runtimes:  # interleaved, so drift cancels out
                root = os.path.join(tmp, "root-%s" % os.path.basename(rt))
                results[rt].append(trace(rt, a.bundle, root, "phase%d" % i, os.path.join(tmp, "trace")))
    print("| phase (median ms, under strace) | " + " | ".join(os.path.basename(rt) for rt in a.runtimes) + " |")
    print("|---|" + "---|" * len(a.runtimes))
    for name, frm, to in PHASES + [("total", "start", "end")]:
        row = []
        for rt in a.runtimes:
            d = [m[to] - m[frm] for m in results[rt] if m.get(frm) is not None and m.get(to) is not None]
            row.append("%.1f" % statistics.median(d) if d else "-")
        print("| %s | %s |" % (name, " | ".join(row)))


if __name__ == "__main__":
    main()
