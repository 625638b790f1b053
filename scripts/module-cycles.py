#!/usr/bin/env python3
"""Lists import cycles between the modules (files) of each crate.

Every `.rs` file under a crate's `src/` is a module. An edge A -> B is a
`use crate::…`, `use super::…` or inline `crate::…` path in A's non-test
code that names module B (the longest path prefix that is a module of the
crate). A module's own children (`mod x;`) and its `#[cfg(test)]` test
modules do not count. Prints each cycle; exits 1 if there is one.

Usage: scripts/module-cycles.py [CRATE_SRC_DIR ...]
(default: every crate's src/ in the workspace)
"""
import os
import re
import sys

DEFAULT = ["core/src", "host-linux/src", "host-linux/pulse/src", "host-linux/srbd/src",
           "dsp-sim/src"]


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[0] == "bin":
                continue
            if rel[-1] in ("lib", "main"):
                rel = rel[:-1]
            elif rel[-1] == "mod":
                rel = rel[:-1]
            mods[tuple(rel)] = path
    return mods


def strip_tests(text):
    # Drop `#[cfg(test)] mod x { ... }` blocks and `#[cfg(test)]` items
    # (a brace-balanced scan) and comments.
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    while True:
        m = re.search(r"#\[cfg\((?:all\()?test\b[^\]]*\]\s*", text[i:])
        if not m:
            out.append(text[i:])
            break
        start = i + m.start()
        out.append(text[i:start])
        j = i + m.end()
        # the item: up to its `;` or its balanced `{…}`
        depth, k = 0, j
        while k < len(text):
            c = text[k]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    k += 1
                    break
            elif c == ";" and depth == 0:
                k += 1
                break
            k += 1
        i = k
    return "".join(out)


def resolve(mods, parts):
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in mods:
            return tuple(parts[:n])
    return None


def edges(mods):
    g = {m: set() for m in mods}
    for m, path in mods.items():
        text = strip_tests(open(path, encoding="utf-8").read())
        paths = []
        for use in re.findall(r"\buse\s+([^;]+);", text):
            # expand one level of braces: a::{b, c::d} -> a::b, a::c::d
            use = re.sub(r"\s+", "", use)
            mb = re.match(r"^(.*?)\{(.*)\}$", use)
            if mb:
                for item in re.split(r",(?![^{]*\})", mb.group(2)):
                    paths.append(mb.group(1) + item)
            else:
                paths.append(use)
        paths += re.findall(r"\bcrate(?:::\w+)+", text)
        for p in paths:
            p = re.sub(r"\bas\s+\w+$", "", p)
            parts = [x for x in p.split("::") if x]
            if not parts:
                continue
            if parts[0] == "crate":
                target = parts[1:]
            elif parts[0] == "super":
                base = list(m)
                rest = parts
                while rest and rest[0] == "super":
                    base = base[:-1]
                    rest = rest[1:]
                target = base + rest
            else:
                continue
            t = resolve(mods, target)
            if t is None or t == m:
                continue
            # a parent naming its own child (mod declarations, re-exports
            # of children) is not an import back
            if t[: len(m)] == m and len(t) > len(m):
                continue
            g[m].add(t)
    return g


def cycles(g):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    srcs = sys.argv[1:] or [os.path.join(root, s) for s in DEFAULT]
    bad = 0
    for src in srcs:
        mods = modules(src)
        g = edges(mods)
        for comp in cycles(g):
            bad += 1
            names = ["::".join(c) or "(root)" for c in comp]
            print(f"{os.path.relpath(src, root)}: import cycle between {', '.join(names)}")
            for a in comp:
                for b in sorted(g[a] & set(comp)):
                    print(f"    {'::'.join(a) or '(root)'} -> {'::'.join(b) or '(root)'}")
    if bad:
        sys.exit(1)
    print(f"no import cycles in {len(srcs)} crates")


if __name__ == "__main__":
    main()
