"""Runs every benchmark and prints one table: operation, ours, each anchor, and the ratios.

    python3 benches/report.py            # runs the benches (about 20 minutes on 2 cores)
    python3 benches/report.py --no-run   # only reads the last results in target/criterion

The benches live in the workspace member `contextvars-benches` (this directory).

Criterion writes each estimate to target/criterion/<group>/<bench>/new/estimates.json; the
CPython anchor comes from benches/python_anchor.py, the memory figure from the `memory` bench
and the end-to-end HTTP figure from the `http` bench, all run here. Output is a Markdown table, ready for BENCHMARKS.md.
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
SIZES = (1, 16, 1024, 10000)


def crit(path):
    """Median time in nanoseconds of one criterion benchmark, or None if it did not run."""
    file = CRITERION / path / "new" / "estimates.json"
    if not file.exists():
        return None
    return json.loads(file.read_text())["median"]["point_estimate"]


def fmt(ns):
    if ns is None:
        return "n/a"
    if ns >= 1000:
        return f"{ns / 1000:.2f} µs"
    return f"{ns:.2f} ns" if ns < 10 else f"{ns:.1f} ns"


def ratio(ours, other):
    if ours is None or other is None:
        return ""
    return f"{other / ours:.2f}x" if other >= ours else f"1/{ours / other:.2f}"


def cargo_bench(bench):
    return ["cargo", "bench", "-p", "contextvars-benches", "--bench", bench]


def main():
    run = "--no-run" not in sys.argv
    if run:
        for bench in ("core", "tasks", "map"):
            subprocess.run(cargo_bench(bench), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    py = json.loads(subprocess.run([sys.executable, str(ROOT / "benches" / "python_anchor.py")], check=True,
                                   capture_output=True, text=True).stdout)
    memory = subprocess.run(cargo_bench("memory"), cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout if run else ""
    http = subprocess.run(cargo_bench("http"), cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout if run else ""

    rows = []  # (operation, ours, [(anchor name, value)])
    tl_with = crit("get_u64/task_local_with")
    for n in SIZES:
        rows.append((f"`get` u64, {n} set", crit(f"get_u64/contextvars/{n}"),
                     [("task_local `with`", tl_with), ("thread_local", crit("get_u64/thread_local_get")),
                      ("OpenTelemetry `current().get`", crit("get_u64/opentelemetry_current_get")),
                      ("CPython `get`", py.get(f"get/{n}"))]))
    rows.append(("`with` String (borrow)", crit("with_string/contextvars"), [("`get` String (clone)", crit("with_string/contextvars_get_clone"))]))
    for n in SIZES:
        rows.append((f"`set` in place, token kept, {n} set", crit(f"set_u64/in_place_keep_token/{n}"), []))
        rows.append((f"`set` in place, {n} set", crit(f"set_u64/in_place/{n}"),
                     [("OpenTelemetry `with_value`+`attach`", crit("set_u64/opentelemetry_with_value_attach")),
                      ("CPython `set`", py.get(f"set/{n}"))]))
    for n in SIZES:
        rows.append((f"`set` after a snapshot, snapshot and token dropped, {n} set", crit(f"set_u64/after_snapshot/{n}"),
                     [("CPython `copy_context(); set`", py.get(f"copy_set/{n}")), ("CPython `set`", py.get(f"set/{n}"))]))
        rows.append((f"(breakdown) the same, drops not timed, {n} set", crit(f"set_u64/after_snapshot_drops_untimed/{n}"), []))
    for n in SIZES:
        rows.append((f"`set` + `reset`, {n} set", crit(f"set_u64/set_reset/{n}"),
                     [("CPython `reset(set())`", py.get(f"set_reset/{n}"))]))
    for n in SIZES:
        rows.append((f"`Context::current()`, {n} set", crit(f"snapshot/context_current/{n}"),
                     [("`Arc` clone+drop", crit("snapshot/arc_clone_drop")), ("CPython `copy_context`", py.get(f"copy_context/{n}"))]))
    for n in SIZES:
        rows.append((f"`Context::run`, {n} set", crit(f"run/context_run/{n}"),
                     [("task_local `sync_scope`", crit("run/task_local_sync_scope")), ("CPython `Context.run`", py.get(f"run/{n}"))]))
    rows.append(("100 polls in a `Scope`", crit("poll_100/contextvars_scope"),
                 [("unscoped", crit("poll_100/unscoped")), ("task_local `scope`", crit("poll_100/task_local_scope"))]))
    rows.append(("`spawn` + join", crit("spawn_join/contextvars_spawn"),
                 [("`tokio::spawn` + join", crit("spawn_join/tokio_spawn")), ("CPython `create_task` round trip", py.get("create_task_round_trip"))]))
    rows.append(("`spawn` + `merge_back`, 1 change", crit("spawn_join/contextvars_spawn_merge_back_1_change"),
                 [("`tokio::spawn` + join", crit("spawn_join/tokio_spawn"))]))
    one = "spawn_join_one_thread_x50"
    rows.append(("50 × (`spawn` + join), one thread", crit(f"{one}/contextvars_spawn"),
                 [("50 × (`tokio::spawn` + join)", crit(f"{one}/tokio_spawn"))]))
    rows.append(("50 × (`spawn` + `merge_back`, 1 change), one thread", crit(f"{one}/contextvars_spawn_merge_back_1_change"),
                 [("50 × (`tokio::spawn` + join)", crit(f"{one}/tokio_spawn"))]))
    rows.append(("`spawn_blocking` + join", crit("spawn_blocking_join/contextvars_spawn_blocking"),
                 [("tokio `spawn_blocking` + join", crit("spawn_blocking_join/tokio_spawn_blocking")),
                  ("CPython `to_thread` round trip", py.get("to_thread_round_trip"))]))
    rows.append(("`spawn_blocking` + `merge_back`, 1 of 1,024", crit("spawn_blocking_join/contextvars_merge_back_1_of_1024"),
                 [("tokio `spawn_blocking` + join", crit("spawn_blocking_join/tokio_spawn_blocking"))]))
    for k in (1, 100):
        rows.append((f"merge of {k} change(s) among 1,024 (diff + apply)", crit(f"merge_of_1024/between_and_apply/{k}"),
                     [("diff alone", crit(f"merge_of_1024/between/{k}"))]))
    rows.append(("`#[sync_endpoint]` call", crit("sync_endpoint/macro"), [("by hand", crit("sync_endpoint/by_hand"))]))
    for n in (16, 1024):
        rows.append((f"map get, {n} entries", crit(f"map_get/contextvars/{n}"),
                     [("rpds", crit(f"map_get/rpds/{n}")), ("imbl", crit(f"map_get/imbl/{n}"))]))
        rows.append((f"map set unshared, {n} entries", crit(f"map_set_unshared/contextvars/{n}"),
                     [("rpds `insert_mut`", crit(f"map_set_unshared/rpds_insert_mut/{n}")), ("imbl `insert`", crit(f"map_set_unshared/imbl_insert/{n}"))]))
        rows.append((f"map set after snapshot, {n} entries", crit(f"map_set_after_snapshot/contextvars/{n}"),
                     [("rpds `insert`", crit(f"map_set_after_snapshot/rpds_insert/{n}")),
                      ("imbl clone+`insert`", crit(f"map_set_after_snapshot/imbl_clone_insert/{n}"))]))

    print("| operation | ours | anchor: time (anchor / ours) |")
    print("|---|---|---|")
    for name, ours, anchors in rows:
        cells = "; ".join(f"{a}: {fmt(v)} ({ratio(ours, v)})" for a, v in anchors if v is not None)
        print(f"| {name} | {fmt(ours)} | {cells} |")
    if http:
        print()
        print("```")
        print(http.strip())
        print("```")
    if memory:
        print()
        print("```")
        print(memory.strip())
        print("```")
    print(f"\nCPython {py.get('python')}; ratios above 1x mean ours is faster.")


if __name__ == "__main__":
    main()
