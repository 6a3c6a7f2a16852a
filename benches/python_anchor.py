"""CPython's own contextvars on this machine: the anchor the Rust figures are compared with.

Prints one JSON object, nanoseconds per operation (or per round trip), best of several runs:
    python3 benches/python_anchor.py
"""

import asyncio
import contextvars
import json
import sys
import timeit

REPEAT = 5


def best(stmt, number, setup=None, globals_=None):
    timer = timeit.Timer(stmt, setup=setup or "pass", globals=globals_)
    return min(timer.repeat(repeat=REPEAT, number=number)) / number * 1e9


def context_with(n):
    """A context in which `n` variables are set; returns it and the variable in the middle."""
    variables = [contextvars.ContextVar(f"v{i}") for i in range(n)]
    ctx = contextvars.Context()

    def fill():
        for i, var in enumerate(variables):
            var.set(i)

    ctx.run(fill)
    return ctx, variables[n // 2]


def in_context(ctx, stmt, number, names):
    """Times `stmt` inside `ctx`, so that get/set see the context's variables."""
    return ctx.run(lambda: best(stmt, number, globals_=names))


def main():
    out = {"python": sys.version.split()[0]}
    for n in (1, 16, 1024, 10000):
        ctx, var = context_with(n)
        out[f"get/{n}"] = in_context(ctx, "var.get()", 1_000_000, {"var": var})
        out[f"set/{n}"] = in_context(ctx, "var.set(1)", 1_000_000, {"var": var})
        # The like-for-like of a Rust `set` after `Context::current()`, both dropped.
        out[f"copy_set/{n}"] = in_context(
            ctx, "copy_context(); var.set(1)", 1_000_000, {"var": var, "copy_context": contextvars.copy_context}
        )
        out[f"set_reset/{n}"] = in_context(ctx, "var.reset(var.set(1))", 500_000, {"var": var})
        out[f"copy_context/{n}"] = in_context(
            ctx, "copy_context()", 1_000_000, {"copy_context": contextvars.copy_context}
        )
        out[f"run/{n}"] = best("ctx.run(f)", 1_000_000, globals_={"ctx": ctx.copy(), "f": int})

    async def to_thread_round_trips(k):
        for _ in range(k):
            await asyncio.to_thread(int)

    async def create_task_round_trips(k):
        async def child():
            return None

        for _ in range(k):
            await asyncio.create_task(child())

    def per_trip(coro_fn, k):
        return min(timeit.repeat(lambda: asyncio.run(coro_fn(k)), repeat=REPEAT, number=1)) / k * 1e9

    out["to_thread_round_trip"] = per_trip(to_thread_round_trips, 2_000)
    out["create_task_round_trip"] = per_trip(create_task_round_trips, 20_000)
    json.dump({k: (round(v, 1) if isinstance(v, float) else v) for k, v in out.items()}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
