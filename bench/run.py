"""Benchmarks of the provider, each a ratio against a baseline measured in the same run.

    python bench/run.py            # full sizes (make bench), a few minutes
    python bench/run.py --smoke    # small sizes (CI), so the benchmarks cannot rot

Prints a table and writes bench/results.json. Targets (issue "Scale and reliability"):

- bulk ingest: MediaPocketBulkIngestOperator's engine >= 0.8 x a bare httpx.AsyncClient loop sending
  the same requests at the same concurrency, and >= 5 x the one-item-at-a-time path;
- 1,000 DAG-action-run triggers in one loop: requests <= 0.15 x one-per-trigger-per-interval, client
  CPU <= 0.5 x a new-client-per-poll baseline, detection latency p99 <= interval + 1 s, RSS growth
  <= 100 MB;
- hook overhead: get_asset through the hook <= 1.15 x a bare httpx.Client, interleaved;
- DAG parse cost: importing the operators and sensors adds <= 50 ms (median of 10) to airflow.sdk.

Targets (issue "Truthful under faults"), one triggerer run of 30 ticks: 1,000 DAG-action-run triggers
wait on 100 assets that each hold 1,000 earlier runs, and every tick one more trigger starts and ends
on an asset of its own:

- the event loop's longest callback <= 50 ms (all of them timed, from the first tick to the last);
- RSS growth of the triggerer process from tick 10 to tick 30 <= 10 MB (flat after the first ticks: the
  first third of the run, in which the allocator reaches the high-water mark of a tick's answers).

The sandbox stands in for Media Pocket. For bulk ingest it adds a fixed latency to every request
(``--latency``, default 20 ms) as a stand-in for the network round trip to the real service; without
it, client and server share two cores on loopback and concurrency has nothing to overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow_home"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # a thousand triggers log a lot at INFO

from airflow_provider_mediapocket.bulk import ingest, validate_items  # noqa: E402
from airflow_provider_mediapocket.hooks import _api  # noqa: E402
from airflow_provider_mediapocket.hooks.mediapocket import MediaPocketHook  # noqa: E402
from airflow_provider_mediapocket.sandbox import MediaPocketSandbox  # noqa: E402
from airflow_provider_mediapocket.sandbox.state.runs import Run  # noqa: E402
from airflow_provider_mediapocket.triggers import _shared  # noqa: E402
from airflow_provider_mediapocket.triggers.mediapocket import MediaPocketDagActionRunTrigger  # noqa: E402

KEY = "bench-api-key"
RESULTS: list[dict[str, Any]] = []


def record(name: str, value: float, target: str, ok: bool, detail: str) -> None:
    RESULTS.append({"benchmark": name, "value": round(value, 4), "target": target, "ok": ok, "detail": detail})
    print(f"{'PASS' if ok else 'FAIL'}  {name:38} {value:10.3f}  target {target:10}  {detail}", flush=True)


def use_connection(base_url: str) -> None:
    """``mediapocket_default`` points at the sandbox (in this process or its own) listening at ``base_url``."""
    port = urllib.parse.urlsplit(base_url).port
    os.environ.update(MediaPocketSandbox(api_key=KEY, port=port or 0).airflow_connection_env())


@contextmanager
def sandbox_process(*args: str) -> Iterator[str]:
    """The sandbox in its own process (so its CPU is not the client's), yielding its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_mediapocket.sandbox", "--port", str(port), "--api-key", KEY, *args],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# ------------------------------------------------------------------------------------------- bulk ingest


def bench_bulk(size: int, concurrency: int, latency: float) -> None:
    with sandbox_process("--latency", str(latency)) as base_url:
        use_connection(base_url)
        hook = MediaPocketHook()
        project = hook.create_project("bench").id
        headers = {"X-API-KEY": KEY, "Content-Type": "application/json"}

        def items(prefix: str, count: int) -> list[dict[str, Any]]:
            return [{"title": f"{prefix} {n}", "file_url": f"https://media.example.com/{prefix}/{n}.jpg",
                     "external_id": f"{prefix}-{n}", "tags": ["bench"]} for n in range(count)]

        async def bare(batch: list[dict[str, Any]]) -> None:
            semaphore = asyncio.Semaphore(concurrency)
            async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
                async def one(item: dict[str, Any]) -> None:
                    body = {"title": item["title"], "tags": item["tags"], "external_id": item["external_id"],
                            "url": {"file_url": item["file_url"], "filename": f"{item['title']}.jpg"}}
                    async with semaphore:
                        response = await client.post(f"/api/v2/projects/{project}/assets", json=body)
                        response.raise_for_status()
                        response.json()
                await asyncio.gather(*(one(item) for item in batch))

        async def ours(batch: list[dict[str, Any]]) -> None:
            async_hook = MediaPocketHook()
            try:
                results = await ingest(async_hook, validate_items(batch, project), max_concurrency=concurrency)
                assert all(r.status == "created" for r in results), results[:3]
            finally:
                await async_hook.aclose()

        def timed(run: Callable[[], Any]) -> float:
            start = time.perf_counter()
            run()
            return time.perf_counter() - start

        half = size // 2
        # Interleave two halves of each so that drift in the machine's load hits both alike.
        bare_time = timed(lambda: asyncio.run(bare(items("bare-a", half))))
        ours_time = timed(lambda: asyncio.run(ours(items("ours-a", half))))
        bare_time += timed(lambda: asyncio.run(bare(items("bare-b", size - half))))
        ours_time += timed(lambda: asyncio.run(ours(items("ours-b", size - half))))
        sequential_count = max(size // 10, 10)
        sequential = items("seq", sequential_count)
        sequential_time = timed(lambda: [hook.create_project_asset(project, **item) for item in sequential])
        bare_rate, ours_rate = size / bare_time, size / ours_time
        sequential_rate = sequential_count / sequential_time
        record("bulk ingest vs bare httpx loop", ours_rate / bare_rate, ">= 0.8", ours_rate / bare_rate >= 0.8,
               f"{ours_rate:.0f} vs {bare_rate:.0f} items/s, {size} items, concurrency {concurrency}, "
               f"latency {latency * 1000:.0f} ms")
        record("bulk ingest vs one item at a time", ours_rate / sequential_rate, ">= 5",
               ours_rate / sequential_rate >= 5, f"{ours_rate:.0f} vs {sequential_rate:.0f} items/s "
               f"(sequential measured on {sequential_count} items)")
        hook.close()


# ----------------------------------------------------------------------------------------- many triggers


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))]


def finished_at(run: dict[str, Any]) -> float:
    stamp = run["dag_action_run_messages"][-1]["created_at"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def naive_wait(base_url: str, asset_id: str, run_id: str, interval: float, deadline: float) -> dict[str, Any]:
    """The baseline: a new client for every poll, one request per trigger per interval."""
    while True:
        async with httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": KEY}, timeout=30) as client:
            response = await client.get(f"/api/v2/assets/{asset_id}/dag_action_runs")
        runs = response.json()["dag_action_runs"]
        run = next(r for r in runs if str(r["id"]) == run_id)
        if run["status"] != "running" or time.time() > deadline:
            return {"status": run["status"], "run": run}
        await asyncio.sleep(interval)


async def ours_wait(asset_id: str, run_id: str, interval: float, deadline: float) -> dict[str, Any]:
    trigger = MediaPocketDagActionRunTrigger(asset_id=asset_id, dag_action_run_id=run_id, end_time=deadline,
                                             poll_interval=interval)
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


async def measure(
    variant: str, waits: list[tuple[str, str]], base_url: str, interval: float, deadline: float
) -> tuple[list[tuple[float, dict[str, Any]]], float]:
    """Wait for every run with one variant; returns (event time, event) pairs and the peak RSS growth."""
    peak = rss_mb()
    base = peak
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.25)

    async def timed(wait: Awaitable[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        event = await wait
        return time.time(), event

    sampler = asyncio.ensure_future(sample())
    if variant == "shared":
        coros = [timed(ours_wait(a, r, interval, deadline)) for a, r in waits]
    else:
        coros = [timed(naive_wait(base_url, a, r, interval, deadline)) for a, r in waits]
    done = await asyncio.gather(*coros)
    stop.set()
    await sampler
    return done, peak - base



def bench_triggers(assets: int, runs_per_asset: int, finish_within: float, interval: float) -> None:
    variants: dict[str, dict[str, float]] = {}
    for variant in ("new-client-per-poll", "shared"):
        with MediaPocketSandbox(api_key=KEY, dag_action_run_seconds=(0.5, finish_within), seed=7) as sandbox:
            use_connection(sandbox.base_url)
            hook = MediaPocketHook()
            waits: list[tuple[str, str]] = []
            for n in range(assets):
                asset = sandbox.state.add_asset(title=f"bench {n}")
                waits += [(asset["id"], str(hook.start_dag_action(asset["id"], 1).id)) for _ in range(runs_per_asset)]
            hook.close()
            sandbox.clear_requests()
            deadline = time.time() + finish_within * 3

            cpu_start = time.thread_time()
            started = time.time()
            done, rss_growth = asyncio.run(
                measure(variant, waits, sandbox.base_url, interval, deadline)
            )
            cpu = time.thread_time() - cpu_start
            requests = sum(1 for r in sandbox.requests if r.path.endswith("/dag_action_runs"))
            final_runs = sandbox.state.runs  # the trigger's events carry ids and status, not the run

            def run_of(event: dict[str, Any], final_runs: dict[int, Any] = final_runs) -> dict[str, Any]:
                return dict(event.get("run") or final_runs[int(event["dag_action_run_id"])])

            latencies = [at - max(finished_at(run_of(event)), started) for at, event in done]
            statuses = {run_of(event)["status"] for _, event in done}
            assert statuses == {"completed"}, statuses
            # "One request per trigger per interval": every trigger polling each interval of the wait
            # (the window from the start to the last event); and, stricter, each only until its own run
            # was seen finished.
            window = max(at for at, _ in done) - started
            per_interval = len(done) * (math.floor(window / interval) + 1)
            until_own = sum(int(max(finished_at(run_of(event)) - started, 0) // interval) + 1 for _, event in done)
            variants[variant] = {
                "cpu": cpu, "requests": requests, "per_interval": per_interval, "until_own": until_own,
                "p99": p99(latencies),
                "rss": rss_growth,
            }
    shared, naive = variants["shared"], variants["new-client-per-poll"]
    count = assets * runs_per_asset
    ratio = shared["requests"] / shared["per_interval"]
    record("trigger requests vs one/trigger/interval", ratio, "<= 0.15", ratio <= 0.15,
           f"{shared['requests']:.0f} vs {shared['per_interval']:.0f} requests, {count} triggers ({assets} assets x "
           f"{runs_per_asset}), interval {interval:g}s; vs each trigger polling only until its own run ended: "
           f"{shared['requests'] / shared['until_own']:.3f} ({shared['until_own']:.0f}); "
           f"the new-client baseline made {naive['requests']:.0f}")
    ratio = shared["cpu"] / naive["cpu"]
    record("trigger CPU vs new client per poll", ratio, "<= 0.5", ratio <= 0.5,
           f"{shared['cpu']:.2f}s vs {naive['cpu']:.2f}s client CPU")
    record("trigger detection latency p99 (s)", shared["p99"], f"<= {interval + 1:g}", shared["p99"] <= interval + 1,
           f"baseline p99 {naive['p99']:.2f}s")
    record("trigger peak RSS growth (MB)", shared["rss"], "<= 100", shared["rss"] <= 100,
           f"baseline {naive['rss']:.0f} MB")


# ------------------------------------------------------------------------------ triggerer event loop


NEVER_ENDING = 5  # the sandbox's DAG action whose runs never finish


def render_finished_runs_once(state: Any) -> None:
    """Finished runs never change: render each once (the sandbox's CPU is not what is measured here)."""
    rendered: dict[Any, dict[str, Any]] = {}
    render = state.store.runs.render

    def cached(run: Run) -> dict[str, Any]:
        if run.status == "running":
            return render(run)
        if run.id not in rendered:
            rendered[run.id] = render(run)
        return rendered[run.id]

    state.store.runs.render = cached  # type: ignore[method-assign]


def encode_finished_runs_once() -> None:
    """Encode each finished run's JSON once (run listings of hundreds of runs, a hundred times a second:
    on two shared cores the sandbox would otherwise spend its CPU re-encoding what never changes, and
    fall behind the client it is meant to stand in for)."""
    from airflow_provider_mediapocket.sandbox import server

    encode = server._encode
    encoded: dict[Any, bytes] = {}

    def run_json(run: dict[str, Any]) -> bytes:
        if run["status"] == "running":
            return encode(run)
        if run["id"] not in encoded:
            encoded[run["id"]] = encode(run)
        return encoded[run["id"]]

    def cached(body: Any) -> bytes:
        if isinstance(body, dict) and list(body) == ["dag_action_runs"]:
            return b'{"dag_action_runs":[' + b",".join(run_json(r) for r in body["dag_action_runs"]) + b"]}"
        return encode(body)

    server._encode = cached


def serve_until_terminated(sandbox: MediaPocketSandbox, seeds: dict[str, Any]) -> int:
    """Serve ``sandbox``, print its URL and one JSON line of ``seeds``; stop on SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with sandbox:
        print(f"Media Pocket sandbox listening on {sandbox.base_url}", flush=True)
        print(json.dumps(seeds), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


def serve_seeded_sandbox(port: int, assets: int, churn: int, earlier: int, per_asset: int) -> int:
    """The sandbox process of :func:`bench_triggerer_loop`: ``assets + churn`` assets of ``earlier`` finished
    runs each; ``per_asset`` never-ending runs on each of the first ``assets``. Prints its URL, then one
    JSON line ``{"steady": [[asset, run], ...], "churn": [[asset, finished run], ...]}``."""
    sandbox = MediaPocketSandbox(api_key=KEY, port=port, dag_action_run_seconds=0.0, seed=7)
    state = sandbox.state
    render_finished_runs_once(state)
    steady: list[tuple[str, Any]] = []
    churned: list[tuple[str, Any]] = []
    for n in range(assets + churn):
        asset = state.add_asset(title=f"bench loop {n}")["id"]
        runs = [state.start_run(asset, 1 + k % 4) for k in range(earlier)]  # 0 s long: finished at once
        if n < assets:
            steady += [(asset, state.start_run(asset, NEVER_ENDING)["id"]) for _ in range(per_asset)]
        else:
            churned.append((asset, runs[(earlier // 2) // 4 * 4]["id"]))  # an action-1 run: completed
    state.tick()
    return serve_until_terminated(sandbox, {"steady": steady, "churn": churned})


def describe_handle(handle: asyncio.Handle) -> str:
    """A callback, or for a task's step the coroutine chain it was suspended in (where the time went)."""
    task = getattr(getattr(handle, "_callback", None), "__self__", None)
    if not isinstance(task, asyncio.Task):
        return repr(handle)[:160]
    chain, coro = [], task.get_coro()
    while coro is not None and len(chain) < 12:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "task " + " > ".join(chain) if chain else repr(handle)[:160]


@contextmanager
def callback_timer() -> Iterator[dict[str, Any]]:
    """Time every callback the event loop runs (``asyncio.Handle._run``), and every garbage collection.

    Per callback: wall time, the loop thread's CPU time, and the CPU time of collections that ran
    inside it. The machine running the benchmark is shared, so wall time also counts the time other
    processes had the CPU; the thread's CPU time is what the callback itself held the loop for. A
    full collection traces every object of the process (Airflow's included) and may start inside any
    callback that allocates: it is reported on its own.
    """
    original = asyncio.events.Handle._run
    stats: dict[str, Any] = {"cpu": 0.0, "what": "", "wall": 0.0, "count": 0, "gc_cpu": 0.0,
                             "full_gcs": 0, "longest_gc": 0.0, "steady": False, "steady_cpu": 0.0}
    collecting: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting["cpu"], collecting["wall"] = time.thread_time(), time.perf_counter()
            return
        stats["gc_cpu"] += time.thread_time() - collecting["cpu"]
        if info["generation"] == 2:
            stats["full_gcs"] += 1
            stats["longest_gc"] = max(stats["longest_gc"], time.perf_counter() - collecting["wall"])

    def timed(handle: asyncio.Handle) -> None:
        wall, cpu, gc_cpu = time.perf_counter(), time.thread_time(), stats["gc_cpu"]
        try:
            original(handle)
        finally:
            stats["count"] += 1
            stats["wall"] = max(stats["wall"], time.perf_counter() - wall)
            own = time.thread_time() - cpu - (stats["gc_cpu"] - gc_cpu)
            if stats["steady"]:
                stats["steady_cpu"] = max(stats["steady_cpu"], own)
            if own > stats["cpu"]:
                stats["cpu"], stats["what"] = own, describe_handle(handle)

    gc.callbacks.append(on_gc)
    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    try:
        yield stats
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
        gc.callbacks.remove(on_gc)


async def triggerer_ticks(
    steady: list[tuple[str, Any]], churn: list[tuple[str, Any]], interval: float, ticks: int, stats: dict[str, Any]
) -> dict[str, Any]:
    """Run the steady triggers for ``ticks`` ticks, one churn trigger starting each tick; RSS per tick.

    ``stats["steady"]`` is set once the first tick is over (every trigger has polled once)."""

    async def wait(asset_id: str, run_id: Any) -> dict[str, Any]:
        return await ours_wait(asset_id, str(run_id), interval, time.time() + 3600)

    first_tick = math.floor(time.time() / interval)
    steady_tasks = [asyncio.ensure_future(wait(a, r)) for a, r in steady]
    churn_tasks = []
    rss: dict[int, float] = {}
    for k in range(1, ticks + 1):
        # Mid-tick: the tick's polls are done (or under way), the next have not started.
        await asyncio.sleep(max((first_tick + k + 0.5) * interval - time.time(), 0.0))
        rss[k] = rss_mb()
        stats["steady"] = True
        if k <= len(churn):
            churn_tasks.append(asyncio.ensure_future(wait(*churn[k - 1])))
    held = _shared.fetch_count()
    ended = [t for t in steady_tasks if t.done()]
    for task in steady_tasks:
        task.cancel()
    await asyncio.gather(*steady_tasks, return_exceptions=True)
    churned = await asyncio.gather(*churn_tasks)
    return {"rss": rss, "held": held, "ended": [t.result() for t in ended], "churned": churned}


@contextmanager
def seeded_sandbox_process(option: str, *args: Any) -> Iterator[tuple[str, dict[str, Any], int]]:
    """This script's ``option`` sandbox in a process of its own: yields its base URL, seeds and pid."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(Path(__file__).resolve()), option, str(port), *map(str, args)]
    # stderr: socketserver prints a traceback for every kept-alive connection the client pool closes.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield f"http://127.0.0.1:{port}", json.loads(process.stdout.readline()), process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a starved machine: freeing a large state takes long
            process.kill()
            process.wait()


def measure_triggerer_loop(assets: int, earlier: int, per_asset: int, interval: float, ticks: int) -> dict[str, Any]:
    """The triggerer side of :func:`bench_triggerer_loop` (run in a process of its own)."""
    with seeded_sandbox_process("--serve-seeded-sandbox", assets, ticks, earlier, per_asset) as (base_url, seeds, _):
        use_connection(base_url)
        # The old path, for comparison: one listing validated whole (what one poll's callback held).
        with httpx.Client(base_url=base_url, headers={"X-API-KEY": KEY}) as client:
            body = client.get(f"/api/v2/assets/{seeds['steady'][0][0]}/dag_action_runs").json()
        whole, scan = [], []
        triple = json.dumps({"dag_action_runs": body["dag_action_runs"] * 3}).encode()  # the 3,000 runs
        listing = _api.get_dag_action_run_listing("x")
        for _ in range(3):
            start = time.perf_counter()
            _api.list_dag_action_runs("x").parse(body)
            whole.append(time.perf_counter() - start)
            start = time.perf_counter()
            listing.parse(_api.decode_run_listing(triple)).get(str(body["dag_action_runs"][0]["id"]))
            scan.append(time.perf_counter() - start)
        gc.collect()
        with callback_timer() as longest:
            outcome = asyncio.run(triggerer_ticks(seeds["steady"], seeds["churn"], interval, ticks, longest))
    return {
        "ended": outcome["ended"], "churned": [p["status"] for p in outcome["churned"]], "held": outcome["held"],
        "rss": outcome["rss"], "longest": {k: v for k, v in longest.items() if k != "steady"},
        "whole": min(whole), "scan": min(scan),
    }


def bench_triggerer_loop(assets: int, earlier: int, per_asset: int, interval: float, ticks: int) -> None:
    # A process of its own, so that its RSS is the triggerer's alone (the benchmarks before leave this
    # process's allocator at a high-water mark that would hide any growth).
    command = [sys.executable, str(Path(__file__).resolve()), "--measure-triggerer-loop", str(assets), str(earlier),
               str(per_asset), str(interval), str(ticks)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the triggerer loop benchmark failed:\n{done.stderr[-4000:]}")
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    outcome["rss"] = {int(k): v for k, v in outcome["rss"].items()}
    longest = outcome["longest"]
    assert not outcome["ended"], f"steady triggers ended early: {outcome['ended'][:3]}"
    assert set(outcome["churned"]) == {"success"}, outcome["churned"][:3]
    rss = outcome["rss"]
    triggers = assets * per_asset
    value = longest["cpu"] * 1000
    record("triggerer longest loop callback (ms CPU)", value, "<= 50", value <= 50,
           f"{triggers} triggers on {assets} assets x {earlier} earlier runs, {ticks} ticks of {interval:g}s, "
           f"{longest['count']} callbacks; after the first tick {longest['steady_cpu'] * 1000:.1f} ms; longest "
           f"in wall time {longest['wall'] * 1000:.0f} ms (shared machine, collections included); "
           f"{longest['full_gcs']} full collections, longest {longest['longest_gc'] * 1000:.0f} ms; the old path "
           f"validated a listing whole in {outcome['whole'] * 1000:.0f} ms; indexing a 3,000-run listing and "
           f"reading one run takes {outcome['scan'] * 1000:.0f} ms; longest: {longest['what']}")
    settled = min(10, ticks)
    growth = rss[ticks] - rss[settled]
    series = " ".join(f"{rss[k]:.0f}" for k in sorted(rss))
    record(f"triggerer RSS growth tick {settled}->{ticks} (MB)", growth, "<= 10", growth <= 10,
           f"one trigger started and ended per tick on an asset of its own; fetches held at the end: "
           f"{outcome['held']} ({assets} assets polled); RSS by tick (MB): {series}")

# ----------------------------------------------------------------------------- one triggerer, many waits


def serve_waits_sandbox(port: int, assets: int, earlier: int, per_asset: int, low: float, high: float) -> int:
    """The sandbox of :func:`bench_many_waits`: ``assets`` assets of ``earlier`` finished runs each, then
    ``per_asset`` runs on each that finish ``low`` to ``high`` seconds from now. Seeds: the waits."""
    sandbox = MediaPocketSandbox(api_key=KEY, port=port, dag_action_run_seconds=0.0, seed=11)
    state = sandbox.state
    render_finished_runs_once(state)
    encode_finished_runs_once()
    ids = [state.add_asset(title=f"bench waits {n}")["id"] for n in range(assets)]
    for asset in ids:
        for k in range(earlier):
            state.start_run(asset, 1 + k % 4)
    state.tick()
    state.dag_action_run_seconds = (low, high)
    waits = [(asset, state.start_run(asset, 1)["id"]) for asset in ids for _ in range(per_asset)]
    return serve_until_terminated(sandbox, {"waits": waits})


async def loop_lag(stop: asyncio.Event, lags: list[tuple[float, float]], period: float = 0.01) -> None:
    """Sample the loop's lag every ``period``: (wall lag, the part of it the loop thread spent on CPU).

    Wall lag also counts the time other processes of the shared machine held the CPU; the thread's own
    CPU time over the sample bounds what the loop's callbacks themselves cost.
    """
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        wall, cpu = loop.time(), time.thread_time()
        await asyncio.sleep(period)
        lag = max(loop.time() - wall - period, 0.0)
        lags.append((lag, min(lag, time.thread_time() - cpu)))


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_many_waits(
    variant: str, assets: int, earlier: int, per_asset: int, interval: float, low: float, high: float
) -> dict[str, Any]:
    """The triggerer side of :func:`bench_many_waits` (a process of its own): every wait in one loop.

    ``variant`` "aligned" is the behaviour before issue 11: every asset polls at the same instant, and
    every shared fetch goes to the connection pool at once."""
    if variant == "aligned":
        _shared.poll_phase = lambda name, interval: 0.0
        _shared.FETCH_CONCURRENCY = 1_000_000
    counted: dict[str, int] = {"listings": 0}
    send = httpx.AsyncHTTPTransport.handle_async_request

    async def counting(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/dag_action_runs"):
            counted["listings"] += 1
        return await send(self, request)

    httpx.AsyncHTTPTransport.handle_async_request = counting  # type: ignore[method-assign]
    with seeded_sandbox_process("--serve-waits-sandbox", assets, earlier, per_asset, low, high) as (
        base_url, seeds, server_pid
    ):
        use_connection(base_url)
        waits = [(a, str(r)) for a, r in seeds["waits"]]
        gc.collect()

        async def run_all() -> dict[str, Any]:
            stop = asyncio.Event()
            lags: list[tuple[float, float]] = []
            peak = base = rss_mb()

            async def sample_rss() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, rss_mb())
                    await asyncio.sleep(0.25)

            async def timed(asset_id: str, run_id: str) -> tuple[float, dict[str, Any]]:
                event = await ours_wait(asset_id, run_id, interval, time.time() + high * 3)
                return time.time(), event

            samplers = [asyncio.ensure_future(loop_lag(stop, lags)), asyncio.ensure_future(sample_rss())]
            started, cpu, server_cpu = time.time(), time.process_time(), process_cpu(server_pid)
            done = await asyncio.gather(*(timed(a, r) for a, r in waits))
            cpu, ended = time.process_time() - cpu, time.time()
            server_cpu = process_cpu(server_pid) - server_cpu
            stop.set()
            await asyncio.gather(*samplers)
            return {"done": done, "lags": lags, "rss": peak - base, "started": started, "cpu": cpu,
                    "seconds": ended - started, "server_cpu": server_cpu, "load": os.getloadavg()[0]}

        with callback_timer() as longest:
            longest["steady"] = True
            outcome = asyncio.run(run_all())
        requests = counted["listings"]
        # When each run finished, from the final listings (after the measurement).
        finished: dict[str, float] = {}
        with httpx.Client(base_url=base_url, headers={"X-API-KEY": KEY}, timeout=60) as client:
            for asset in sorted({a for a, _ in waits}):
                for run in client.get(f"/api/v2/assets/{asset}/dag_action_runs").json()["dag_action_runs"]:
                    finished[str(run["id"])] = finished_at(run)
    started = outcome["started"]
    statuses = {event["status"] for _, event in outcome["done"]}
    assert statuses == {"success"}, statuses
    delays = [at - max(finished[event["dag_action_run_id"]], started) for at, event in outcome["done"]]
    last: dict[str, float] = {}
    for asset, run in waits:
        last[asset] = max(last.get(asset, 0.0), finished[run])
    # One request per asset per tick (of the asset's own tick grid) while any wait on it is active: the
    # poll at the start, one each tick until the last run ended, one that sees it ended.
    lower = 0
    for asset, end in last.items():
        phase = _shared.poll_phase(asset, interval)
        lower += 1 if end <= started else (
            math.floor((end - phase) / interval) - math.floor((started - phase) / interval) + 2)
    # Each trigger polling alone, at once and then every interval until it saw its own run ended.
    alone = sum(1 + math.ceil(max(finished[run] - started, 0.0) / interval) for _, run in waits)
    wall = [lag for lag, _ in outcome["lags"]]
    own = [cpu for _, cpu in outcome["lags"]]
    return {
        "requests": requests, "lower": lower, "alone": alone, "waits": len(waits),
        "p99_delay": p99(delays), "lag_wall_p99": p99(wall), "lag_cpu_p99": p99(own), "lag_wall_max": max(wall),
        "rss": outcome["rss"], "cpu": outcome["cpu"], "seconds": outcome["seconds"],
        "server_cpu": outcome["server_cpu"], "load": outcome["load"],
        "longest": {k: v for k, v in longest.items() if k != "steady"},
    }


def bench_many_waits(
    assets: int, earlier: int, per_asset: int, interval: float, low: float, high: float, before: bool = True
) -> None:
    """One triggerer, ``assets * per_asset`` DAG-action-run waits: the loop stays responsive, one request
    per asset and tick. Before (every asset aligned to the same instant; skipped with ``before=False``)
    and after, each in a process of its own, in this run."""
    results = {}
    for variant in ("aligned", "phased") if before else ("phased",):
        command = [sys.executable, str(Path(__file__).resolve()), "--measure-many-waits", variant, str(assets),
                   str(earlier), str(per_asset), str(interval), str(low), str(high)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"the many-waits benchmark ({variant}) failed:\n{done.stderr[-4000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    after = results["phased"]
    unmeasured = {k: math.nan for k in after} | {"longest": {k: math.nan for k in after["longest"]}}
    before = results.get("aligned") or unmeasured
    waits = after["waits"]
    size = f"{waits} waits on {assets} assets x {earlier} earlier runs, interval {interval:g}s"
    value = after["longest"]["cpu"] * 1000
    record("many waits: longest loop callback (ms CPU)", value, "<= 50", value <= 50,
           f"{size}; before (aligned polls) {before['longest']['cpu'] * 1000:.0f} ms; longest in wall time "
           f"{after['longest']['wall'] * 1000:.0f} ms (before {before['longest']['wall'] * 1000:.0f}; shared machine); "
           f"{after['longest']['full_gcs']} full collections, longest {after['longest']['longest_gc'] * 1000:.0f} ms; "
           f"longest: {after['longest']['what']}")
    value = after["lag_cpu_p99"] * 1000
    record("many waits: loop lag p99 (ms, own CPU)", value, "<= 20", value <= 20,
           f"before {before['lag_cpu_p99'] * 1000:.1f} ms; in wall time p99 {after['lag_wall_p99'] * 1000:.1f} ms "
           f"(before {before['lag_wall_p99'] * 1000:.1f}), max {after['lag_wall_max'] * 1000:.0f} ms "
           f"(before {before['lag_wall_max'] * 1000:.0f}); sampled every 10 ms")
    ratio = after["requests"] / after["lower"]
    record("many waits: requests vs one/asset/tick", ratio, "<= 1.05", ratio <= 1.05,
           f"{after['requests']} vs {after['lower']}; vs one per trigger per interval "
           f"{after['requests'] / after['alone']:.3f} ({after['alone']}); before: {before['requests']} requests, "
           f"{before['requests'] / before['lower']:.3f} x its lower bound, {before['requests'] / before['alone']:.3f} "
           f"x one per trigger per interval")
    record("many waits: detection delay p99 (s)", after["p99_delay"], f"<= {interval + 1:g}",
           after["p99_delay"] <= interval + 1, f"before {before['p99_delay']:.2f}s")
    record("many waits: peak RSS growth (MB)", after["rss"], "<= 150", after["rss"] <= 150,
           f"before {before['rss']:.0f} MB")
    value = after["cpu"] / waits * 1000
    record("many waits: CPU s per 1,000 waits", value, "report", True,
           f"{after['cpu']:.1f}s CPU over {after['seconds']:.0f}s for {waits} waits "
           f"({after['cpu'] / after['seconds'] * 100:.0f}% of a core), "
           f"{after['cpu'] / after['requests'] * 1000:.1f} ms a request; "
           f"before {before['cpu'] / waits * 1000:.2f}s ({before['cpu']:.1f}s over "
           f"{before['seconds']:.0f}s); the sandbox: {after['server_cpu'] / after['requests'] * 1000:.1f} ms CPU a "
           f"request, {after['server_cpu'] / after['seconds'] * 100:.0f}% of a core; load average "
           f"{after['load']:.1f} (before {before['load']:.1f}) on {os.cpu_count()} cores")


# ----------------------------------------------------------------------------------------- hook overhead


def bench_hook_overhead(calls: int) -> None:
    with sandbox_process() as base_url:
        use_connection(base_url)
        hook = MediaPocketHook()
        asset_id = hook.create_asset("overhead").id
        bare = httpx.Client(base_url=base_url, headers=hook.get_client().headers)  # the same request bytes
        hook.get_asset(asset_id)
        bare.get(f"/api/v2/assets/{asset_id}").json()
        totals = {"hook": 0.0, "bare": 0.0}
        ratios = []
        block = 20

        def bare_block() -> float:
            start = time.perf_counter()
            for _ in range(block):
                response = bare.get(f"/api/v2/assets/{asset_id}")
                response.raise_for_status()
                response.json()
            return time.perf_counter() - start

        def hook_block() -> float:
            start = time.perf_counter()
            for _ in range(block):
                hook.get_asset(asset_id)
            return time.perf_counter() - start

        for n in range(calls // block):
            # Alternate which goes first; compare each pair, so load drifts cancel out.
            first, second = (bare_block, hook_block) if n % 2 == 0 else (hook_block, bare_block)
            a, b = first(), second()
            bare_time, hook_time = (a, b) if n % 2 == 0 else (b, a)
            totals["bare"] += bare_time
            totals["hook"] += hook_time
            ratios.append(hook_time / bare_time)
        ratio = statistics.median(ratios)
        record("hook get_asset vs bare httpx.Client", ratio, "<= 1.15", ratio <= 1.15,
               f"median of {len(ratios)} interleaved pairs of {block}; {totals['hook'] / calls * 1e3:.3f} vs "
               f"{totals['bare'] / calls * 1e3:.3f} ms a call, {calls} calls each")
        bare.close()
        hook.close()


# ------------------------------------------------------------------------------------------- parse cost


def bench_parse_cost(repeats: int) -> None:
    script = (
        "import time; t=time.perf_counter(); import airflow.sdk; t1=time.perf_counter(); "
        "import airflow_provider_mediapocket.operators.mediapocket, airflow_provider_mediapocket.sensors.mediapocket; "
        "print(time.perf_counter()-t1, t1-t)"
    )
    added, base = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
        ours, sdk = (float(x) for x in out.stdout.split())
        added.append(ours * 1000)
        base.append(sdk * 1000)
    value = statistics.median(added)
    record("DAG parse: operators+sensors import (ms)", value, "<= 50", value <= 50,
           f"median of {repeats}; import airflow.sdk itself {statistics.median(base):.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small sizes, for CI")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--serve-seeded-sandbox", nargs=5, type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--measure-triggerer-loop", nargs=5, type=float, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--serve-waits-sandbox", nargs=6, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--measure-many-waits", nargs=7, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="run only the benchmarks whose function name contains this")
    args = parser.parse_args()
    if args.serve_seeded_sandbox:
        return serve_seeded_sandbox(*args.serve_seeded_sandbox)
    if args.serve_waits_sandbox:
        port, assets, earlier, per_asset, low, high = args.serve_waits_sandbox
        return serve_waits_sandbox(int(port), int(assets), int(earlier), int(per_asset), float(low), float(high))
    if args.measure_many_waits:
        variant, assets, earlier, per_asset, interval, low, high = args.measure_many_waits
        result = measure_many_waits(variant, int(assets), int(earlier), int(per_asset), float(interval), float(low),
                                    float(high))
        print(json.dumps(result), flush=True)
        return 0
    if args.measure_triggerer_loop:
        assets, earlier, per_asset, interval, ticks = args.measure_triggerer_loop
        result = measure_triggerer_loop(int(assets), int(earlier), int(per_asset), interval, int(ticks))
        print(json.dumps(result), flush=True)
        return 0
    smoke = args.smoke
    print(f"{'':6}{'benchmark':38} {'value':>10}  target", flush=True)
    runs: list[tuple[Callable[..., None], dict[str, Any]]] = [
        (bench_parse_cost, {"repeats": 3 if smoke else 10}),
        (bench_hook_overhead, {"calls": 200 if smoke else 2000}),
        (bench_bulk, {"size": 100 if smoke else 1000, "concurrency": 16, "latency": args.latency}),
        (bench_triggers, {"assets": 5, "runs_per_asset": 10, "finish_within": 4.0, "interval": 0.5} if smoke else
         {"assets": 100, "runs_per_asset": 10, "finish_within": 60.0, "interval": 5.0}),
        (bench_triggerer_loop, {"assets": 10, "earlier": 1000, "per_asset": 10, "interval": 0.5, "ticks": 30} if smoke
         else {"assets": 100, "earlier": 1000, "per_asset": 10, "interval": 3.0, "ticks": 30}),
        # The 5,000 waits on 500 assets of 200 earlier runs each, polled every 5 s.
        (bench_many_waits, {"assets": 20, "earlier": 100, "per_asset": 10, "interval": 1.0, "low": 1.0, "high": 5.0,
                            "before": False}  # the before figures ("nan") only in the full run: CI time
         if smoke else {"assets": 500, "earlier": 200, "per_asset": 10, "interval": 5.0, "low": 10.0, "high": 60.0}),
    ]
    for bench, kwargs in runs:
        if args.only is None or args.only in bench.__name__:
            bench(**kwargs)
    args.out.write_text(json.dumps({"smoke": smoke, "results": RESULTS}, indent=2) + "\n")
    failed = [r["benchmark"] for r in RESULTS if not r["ok"]]
    missed = f": {failed}" if failed else ""
    print(f"benchmarks: {len(RESULTS) - len(failed)} targets met, {len(failed)} missed{missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
