#!/usr/bin/env python3
"""Checks that the README's two commands compile each third-party crate the same way.

`cargo run -- dev` builds `eerp-platform` alone; `cargo test` builds every default member
with its dev-dependencies, which turn on more features of crates both use. A crate built
with another feature set is compiled again, and so is everything above it (wasmtime,
actix-web, tokio-postgres). `workspace-hack/` lists the union of the features for both
commands; this script fails, naming crate, side and features, when that list falls
behind.

It compares cargo's unit graphs (what each command would compile, without compiling):
every third-party unit `cargo test` needs must be one `cargo run` already built, or a
crate `cargo run` does not use at all. `--unit-graph` is unstable, so the script sets
RUSTC_BOOTSTRAP=1 for those two read-only cargo calls; nothing is built with it.
"""
import json
import os
import subprocess
import sys

RUN = ["build", "-p", "eerp-platform", "--bin", "eerp"]
TEST = ["test", "--no-run"]


def units(command):
    """{(crate, target, mode, side): {features}} of the third-party units `command` needs."""
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    done = subprocess.run(
        ["cargo", *command, "--locked", "--unit-graph", "-Z", "unstable-options"],
        capture_output=True, text=True, env=env,
    )
    if done.returncode != 0:
        sys.exit(f"`cargo {' '.join(command)} --unit-graph` failed:\n{done.stderr}")
    graph = json.loads(done.stdout)
    nodes = graph["units"]
    # A unit is on the host side when a build script or a proc-macro depends on it.
    host = [False] * len(nodes)
    for i, unit in enumerate(nodes):
        kinds = unit["target"]["kind"]
        if "proc-macro" in kinds or "custom-build" in kinds:
            host[i] = True
    changed = True
    while changed:
        changed = False
        for i, unit in enumerate(nodes):
            if not host[i]:
                continue
            for dep in unit["dependencies"]:
                if not host[dep["index"]]:
                    host[dep["index"]] = changed = True
    found = {}
    for i, unit in enumerate(nodes):
        package = unit["pkg_id"]
        if package.startswith("path+file"):  # a workspace member
            continue
        crate = package.rsplit("#", 1)[-1]
        key = (crate, unit["target"]["name"], unit["mode"], "host" if host[i] else "target")
        found.setdefault(key, set()).add(tuple(sorted(unit["features"])))
    return found


def main():
    run, test = units(RUN), units(TEST)
    built = {key[0] for key in run}
    again = []
    for key, feature_sets in sorted(test.items()):
        crate, target, mode, side = key
        if crate not in built or mode != "build" or target == "build-script-build":
            continue
        for features in sorted(feature_sets - run.get(key, set())):
            again.append(f"  {crate} ({side}): {','.join(features) or '(no features)'}"
                         f"; `cargo run` has {sorted(run.get(key, set())) or 'none on this side'}")
    if not again:
        print(f"features aligned: `cargo test` compiles no crate again that `cargo run` built "
              f"({len(built)} crates)")
        return 0
    print("`cargo test` would compile again these crates `cargo run -- dev` built, with other")
    print("features; add them to workspace-hack/Cargo.toml ([build-dependencies] for the host side):")
    print("\n".join(again))
    return 1


if __name__ == "__main__":
    sys.exit(main())
