#!/usr/bin/env python3
"""layering.py - keep the C code layered: calls flow one way.

Builds the file-level call graph of src/, control/ and clients/ from the
objects the compiler made (nm: the symbols each object defines and the
ones it needs), and fails when

  - a file reaches a file that reaches it back (a cycle, of any length):
    a lower file may call up only through a callback it was given, and a
    callback handed over at run time leaves no symbol reference;
  - a C file in src/, control/, plugins/ or clients/ is over 800 lines.

Run by `make check` (TOP_SRCDIR and TOP_BUILDDIR come from the test
environment), or by hand after a build:

    python3 tests/layering.py [--srcdir DIR] [--builddir DIR] [--graph]

--graph prints every edge with the symbols it carries, lowest files first.
"""

import argparse
import glob
import os
import subprocess
import sys

MAX_LINES = 800
GRAPH_DIRS = ("src", "control", "clients")
LINE_DIRS = ("src", "control", "plugins", "clients")


def object_of(builddir, cfile):
    """The object the build made for srcdir-relative cfile, or None."""
    d, base = os.path.split(cfile)
    stem = base[:-2]
    for cand in (os.path.join(builddir, d, ".libs", stem + ".o"),
                 os.path.join(builddir, d, stem + ".o")):
        if os.path.exists(cand):
            return cand
    # A program with per-target flags: clients/pop3ctl-NAME.o
    found = sorted(glob.glob(os.path.join(builddir, d, "*-" + stem + ".o")))
    return found[0] if found else None


def symbols(obj):
    """(defined, needed) global symbol sets of one object."""
    out = subprocess.run(["nm", obj], check=True, capture_output=True,
                         text=True).stdout
    defined, needed = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TDBRCGS":
            defined.add(f[2])
        elif len(f) == 2 and f[0] == "U":
            needed.add(f[1])
    return defined, needed


def graph(files):
    """{file: {file: symbols}} from {file: (defined, needed)}."""
    owner = {}
    for f, (defined, _) in files.items():
        for s in defined:
            owner.setdefault(s, f)
    edges = {f: {} for f in files}
    for f, (_, needed) in files.items():
        for s in needed:
            g = owner.get(s)
            if g is not None and g != f:
                edges[f].setdefault(g, set()).add(s)
    return edges


def components(edges):
    """Strongly connected components (Tarjan), each a sorted list."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        # Iterative, so that a deep graph cannot exhaust Python's stack.
        work = [(v, iter(sorted(edges[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def cycles(edges):
    """Components of more than one file: each holds a cycle."""
    return [c for c in components(edges) if len(c) > 1]


def self_test():
    """The detector must see a cycle of three and none in a chain."""
    ring = {"a": {"b": {"x"}}, "b": {"c": {"y"}}, "c": {"a": {"z"}}, "d": {}}
    chain = {"a": {"b": {"x"}}, "b": {"c": {"y"}}, "c": {}, "d": {"a": {"w"}}}
    assert cycles(ring) == [["a", "b", "c"]], cycles(ring)
    assert cycles(chain) == [], cycles(chain)


def long_files(srcdir):
    """(path, lines) of every C file over MAX_LINES."""
    out = []
    for d in LINE_DIRS:
        for path in sorted(glob.glob(os.path.join(srcdir, d, "**", "*.c"),
                                     recursive=True)):
            with open(path, "rb") as fh:
                n = sum(1 for _ in fh)
            if n > MAX_LINES:
                out.append((os.path.relpath(path, srcdir), n))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--srcdir", default=os.environ.get("TOP_SRCDIR", "."))
    ap.add_argument("--builddir", default=os.environ.get("TOP_BUILDDIR", "."))
    ap.add_argument("--graph", action="store_true")
    a = ap.parse_args()
    self_test()

    files, missing = {}, []
    for d in GRAPH_DIRS:
        for path in sorted(glob.glob(os.path.join(a.srcdir, d, "*.c"))):
            rel = os.path.relpath(path, a.srcdir)
            obj = object_of(a.builddir, rel)
            if obj is None:
                missing.append(rel)
            else:
                files[rel] = symbols(obj)
    rc = 0
    if missing:
        print("layering: no object for " + ", ".join(missing)
              + " (build first: make)")
        rc = 1
    edges = graph(files)
    nedges = sum(len(v) for v in edges.values())
    if a.graph:
        order = [f for comp in components(edges) for f in comp]
        for f in order:
            for g in sorted(edges[f]):
                print("%s -> %s: %s" % (f, g, " ".join(sorted(edges[f][g]))))
    for comp in cycles(edges):
        rc = 1
        print("layering: CYCLE among " + ", ".join(comp))
        for f in comp:
            for g in sorted(edges[f]):
                if g in comp:
                    print("  %s -> %s: %s" % (f, g,
                                              " ".join(sorted(edges[f][g]))))
    for path, n in long_files(a.srcdir):
        rc = 1
        print("layering: %s has %d lines (at most %d)" % (path, n, MAX_LINES))
    if rc == 0:
        print("layering: %d files, %d file-to-file edges, no cycle; "
              "no C file over %d lines" % (len(files), nedges, MAX_LINES))
    return rc


if __name__ == "__main__":
    sys.exit(main())
