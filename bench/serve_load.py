"""Load test of `fusionrec serve` over loopback: throughput and latency of POST /recommend per client concurrency.

Starts `fusionrec serve` for a model folder in a subprocess on a free port (or targets a running service with
--url), waits for /ready, then for each concurrency (default 1, 8, 32) sends --requests requests of
POST /recommend {"user_id": <random known user>, "k": 10} from that many concurrent clients (asyncio + httpx, one
connection per client, kept alive) and reports req/s and p50/p95/p99 latency. Each phase stops at --requests or
--max-seconds, whichever comes first, after an untimed warm-up.

The load generator runs on the same machine as the server. On a small machine the two compete for the cores, so the
report also gives the CPU time each side spent per request (client: this process; server: /proc/<pid>/stat of the
server process), and --health-baseline measures GET /health (no model work) at the same concurrency: the floor the
HTTP stack and the client alone impose.

    .venv/bin/python bench/serve_load.py --model runs/bpr/model --requests 2000 --out bench/out/serve-ml100k.json

Synthetic catalogue (no training): ``--synthetic clustered`` (the default) draws vectors with the structure of
trained embeddings (clusters, a decaying spectrum, popularity-skewed norms, users near a mix of a few clusters, seen
items from their clusters; see fusionrec.data.synthetic_vectors), so an approximate index's recall on it is
meaningful; ``--synthetic random`` draws isotropic Gaussian vectors and random seen items, the worst case for a graph
index:

    .venv/bin/python bench/serve_load.py --synthetic-items 1000000 --synthetic-users 10000 \\
        --model bench/out/synth-1m-clustered/model --index faiss-hnsw --requests 2000 --out bench/out/serve-1m.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from fusionrec.util import atomic_io  # light: no torch
from fusionrec.util.provenance import machine, package_versions

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    model = Path(args.model)
    if args.synthetic_items:
        if args.rebuild or not (model / "config.json").is_file():
            t0 = time.perf_counter()
            write_synthetic_artifact(model, args.synthetic_users, args.synthetic_items, args.dim,
                                     args.seen_per_user, args.seed, args.synthetic)
            print(f"wrote {model}: {args.synthetic_users} users x {args.synthetic_items} items, d={args.dim}, "
                  f"{args.synthetic} vectors ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    users = json.loads((model / "users.json").read_text())
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]

    proc = None
    log_file = None
    url = args.url
    startup_s = None
    try:
        if url is None:
            port = _free_port()
            cmd = [sys.executable, "-m", "fusionrec.cli", "serve", "--model", str(model), "--port", str(port)]
            if args.index:
                cmd += ["--index", args.index]
            cmd += args.serve_arg
            log_path = Path(args.server_log or (Path(args.out).with_suffix(".server.log") if args.out
                                                  else "/tmp/fusionrec-serve-load.log"))
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = open(log_path, "w")
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env={**os.environ, "FUSIONREC_API_KEY": ""})
            url = f"http://127.0.0.1:{port}"
            print(f"server: {shlex.join(cmd)} (log: {log_path})", file=sys.stderr)
        ready = _wait_ready(url, args.ready_timeout_s, proc)
        if proc is not None:
            startup_s = round(time.perf_counter() - t0, 2)
        print(f"ready: {ready}" + (f" after {startup_s}s" if startup_s is not None else ""), file=sys.stderr)

        rows = []
        for c in concurrencies:
            phases = [("/recommend", "POST")] + ([("/health", "GET")] if args.health_baseline else [])
            for path, method in phases:
                row = asyncio.run(run_phase(url, path, method, users, c, args.requests, args.max_seconds, args.k,
                                            args.seed, args.warmup, proc.pid if proc else None, args.client,
                                            args.rate))
                rows.append(row)
                print(_row_line(row), file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if log_file is not None:
            log_file.close()

    report = {
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["serve_load.py", *argv]),
        "url": args.url or "subprocess on loopback",
        "model": str(model),
        "ready": ready,
        "startup_s": startup_s,
        "index": args.index,
        "k": args.k,
        "client": args.client,
        "offered_req_per_s": args.rate,
        "requests_per_phase": args.requests,
        "max_seconds_per_phase": args.max_seconds,
        "machine": machine(),
        "git": _git(),
        "versions": _versions(),
        "results": rows,
    }
    print(_table(rows))
    if args.out:
        atomic_io.write_json(args.out, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


async def run_phase(url: str, path: str, method: str, users: list[str], concurrency: int, n_requests: int,
                    max_seconds: float, k: int, seed: int, warmup: int, server_pid: int | None,
                    client_kind: str = "httpx", rate: float | None = None) -> dict:
    """``concurrency`` clients, each with its own kept-alive connection, send requests until ``n_requests`` have
    been sent or ``max_seconds`` have passed.

    Closed loop (``rate`` None): each client sends its next request as soon as the last one is answered; latency is
    send to full body. Open loop (``rate`` req/s): request j is due at ``j / rate`` s and is sent by the first free
    client; its latency counts from when it was due, so time spent waiting for a free client is included (no
    coordinated omission)."""
    clients = [await _open_client(client_kind, url) for _ in range(concurrency)]
    try:
        state = {"issued": 0, "errors": 0, "deadline": float("inf"), "limit": 0, "t0": 0.0, "rate": None}
        latencies: list[float] = []

        async def worker(wid: int, record: bool) -> None:
            rng = random.Random(seed * 1000 + wid)
            client = clients[wid]
            while state["issued"] < state["limit"] and time.perf_counter() < state["deadline"]:
                j = state["issued"]
                state["issued"] += 1
                t0 = time.perf_counter()
                if state["rate"]:
                    due = state["t0"] + j / state["rate"]
                    if due > t0:
                        await asyncio.sleep(due - t0)
                    t0 = due
                body = {"user_id": rng.choice(users), "k": k} if method == "POST" else None
                if await client.request(method, path, body) != 200:
                    state["errors"] += 1
                if record:
                    latencies.append(time.perf_counter() - t0)

        state["limit"] = max(warmup, concurrency)  # untimed: connections opened, server paths warm
        await asyncio.gather(*(worker(w, False) for w in range(concurrency)))
        state.update(issued=0, errors=0, limit=n_requests, rate=rate)
        cpu0, srv0 = time.process_time(), _proc_cpu_s(server_pid)
        t0 = state["t0"] = time.perf_counter()
        state["deadline"] = t0 + max_seconds
        await asyncio.gather(*(worker(w, True) for w in range(concurrency)))
        wall = time.perf_counter() - t0
        cpu1, srv1 = time.process_time(), _proc_cpu_s(server_pid)
    finally:
        for c in clients:
            await c.close()

    lat_ms = np.asarray(latencies) * 1000.0
    n = len(lat_ms)
    p50, p95, p99 = (float(np.percentile(lat_ms, q)) for q in (50, 95, 99)) if n else (None,) * 3
    return {
        "endpoint": f"{method} {path}",
        "client": client_kind,
        "offered_req_per_s": rate,
        "concurrency": concurrency,
        "requests": n,
        "errors": state["errors"],
        "seconds": round(wall, 3),
        "req_per_s": round(n / wall, 1) if wall > 0 else None,
        "p50_ms": _r(p50), "p95_ms": _r(p95), "p99_ms": _r(p99),
        "max_ms": _r(float(lat_ms.max())) if n else None,
        "client_cpu_ms_per_req": _r((cpu1 - cpu0) * 1000 / n) if n else None,
        "server_cpu_ms_per_req": _r((srv1 - srv0) * 1000 / n) if n and srv0 is not None else None,
    }


class _HttpxClient:
    """One kept-alive httpx connection."""

    def __init__(self, url: str):
        import httpx

        self.client = httpx.AsyncClient(base_url=url, timeout=60.0,
                                        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))

    async def request(self, method: str, path: str, body: dict | None) -> int:
        r = await self.client.request(method, path, json=body)
        return r.status_code

    async def close(self) -> None:
        await self.client.aclose()


class _RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (answers must carry Content-Length, as uvicorn's
    JSON replies do). Costs a fraction of httpx's CPU per request, so it shows how much of a latency figure is the
    load generator's own overhead."""

    def __init__(self, url: str):
        rest = url.split("://", 1)[1].rstrip("/")
        host, _, port = rest.partition(":")
        self.host, self.port = host, int(port or 80)
        self.reader = self.writer = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: dict | None) -> int:
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                + (f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n" if body is not None else "")
                + "\r\n").encode()
        self.writer.write(head + payload)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "content-length"),
                      None)
        if length is None:
            raise RuntimeError(f"reply without Content-Length: {lines[0]}")
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _open_client(kind: str, url: str):
    if kind == "httpx":
        return _HttpxClient(url)
    client = _RawClient(url)
    await client.connect()
    return client


def write_synthetic_artifact(path: Path, n_users: int, n_items: int, dim: int, seen_per_user: int, seed: int,
                             kind: str = "clustered") -> None:
    """A BPR artifact (no training) with ids ``u0..`` and ``i0..`` and ``seen_per_user`` seen items per user (fewer
    where draws repeat). ``kind``: ``clustered``, vectors with the structure of trained embeddings
    (:func:`fusionrec.data.synthetic_vectors.clustered_vectors`, seen items from the user's clusters), or
    ``random``, standard normal / sqrt(dim) vectors and uniformly random seen items (the worst case for HNSW)."""
    import scipy.sparse as sp
    import torch

    from fusionrec.artifacts import save_artifact
    from fusionrec.data.ids import IdMap
    from fusionrec.data.synthetic_vectors import clustered_vectors, vector_stats
    from fusionrec.models.bpr import BPR, BPRParams

    if kind == "clustered":
        made = clustered_vectors(n_users, n_items, dim, seed, seen_per_user=seen_per_user)
        user_vecs, item_vecs = torch.from_numpy(made.users), torch.from_numpy(made.items)
        rows, cols = made.seen
        note = {"note": "clustered synthetic vectors (fusionrec.data.synthetic_vectors.clustered_vectors, defaults)",
                "vector_stats": vector_stats(made.users, made.items, made.popularity)}
    elif kind == "random":
        gen = torch.Generator().manual_seed(seed)
        user_vecs = torch.randn(n_users, dim, generator=gen) / dim ** 0.5
        item_vecs = torch.randn(n_items, dim, generator=gen) / dim ** 0.5
        rng = np.random.default_rng(seed)
        cols = rng.integers(n_items, size=n_users * seen_per_user)
        rows = np.repeat(np.arange(n_users), seen_per_user)
        note = {"note": "random vectors for latency tests"}
    else:
        raise ValueError(f"unknown synthetic kind {kind!r}; use clustered or random")
    model = BPR(n_users, n_items, BPRParams(embedding_size=dim))
    with torch.no_grad():
        model.user_emb.weight.copy_(user_vecs)
        model.item_emb.weight.copy_(item_vecs)
    model.eval()
    seen = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    seen.sum_duplicates()
    seen.data[:] = 1.0
    save_artifact(path, model, IdMap.from_list("user", [f"u{j}" for j in range(n_users)]),
                  IdMap.from_list("item", [f"i{j}" for j in range(n_items)]), seen,
                  extra={"dataset": f"synthetic-{kind}-{n_items}", "seed": seed, **note})


# -- helpers ------------------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder (DIR/model of fusionrec train); also the user ids "
                                                  "the requests draw from")
    p.add_argument("--url", help="target a running service instead of starting one (e.g. http://127.0.0.1:8000)")
    p.add_argument("--index", help="passed to fusionrec serve as --index (e.g. faiss-hnsw)")
    p.add_argument("--serve-arg", action="append", default=[], help="extra argument for fusionrec serve (repeat)")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    p.add_argument("--requests", type=int, default=2000, help="timed requests per concurrency (default 2000)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="cap on each timed phase (default 60)")
    p.add_argument("--warmup", type=int, default=100, help="untimed requests before each phase (default 100)")
    p.add_argument("--client", choices=["httpx", "raw"], default="httpx",
                   help="httpx.AsyncClient (default), or a minimal asyncio HTTP/1.1 client with far less CPU per "
                        "request (to see the load generator's share of the latency)")
    p.add_argument("--rate", type=float, help="open loop: offer this many requests per second in total (latency "
                                              "counts from when each request was due); default: closed loop")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--health-baseline", action="store_true",
                   help="also load GET /health at each concurrency (HTTP stack + client, no model work)")
    p.add_argument("--ready-timeout-s", type=float, default=900.0)
    p.add_argument("--server-log", help="where the server's output goes (default: beside --out)")
    p.add_argument("--out", help="JSON report")
    p.add_argument("--synthetic-items", type=int, default=0,
                   help="write a synthetic BPR artifact with this many items to --model first (if absent)")
    p.add_argument("--synthetic", choices=["clustered", "random"], default="clustered",
                   help="synthetic vectors: clustered, with the structure of trained embeddings (default), or "
                        "random Gaussian, the worst case for HNSW")
    p.add_argument("--synthetic-users", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seen-per-user", type=int, default=20)
    p.add_argument("--rebuild", action="store_true", help="rewrite the synthetic artifact even if it exists")
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, timeout_s: float, proc: subprocess.Popen | None) -> dict:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} before it was ready (see its log)")
        try:
            r = httpx.get(url + "/ready", timeout=2.0)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} was not ready after {timeout_s}s")


def _proc_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process and its reaped children, from /proc (None without one)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _git() -> dict:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}


def _versions() -> dict:
    out = package_versions()
    for name in ("uvicorn", "httpx", "pydantic", "starlette", "uvloop", "httptools"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _row_line(r: dict) -> str:
    return (f"{r['endpoint']:<16} {r['client']:<5} c={r['concurrency']:<3} rate={r['offered_req_per_s']} n={r['requests']:<5} {r['req_per_s']} req/s  "
            f"p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  p99 {r['p99_ms']} ms  errors {r['errors']}  "
            f"cpu/req client {r['client_cpu_ms_per_req']} ms, server {r['server_cpu_ms_per_req']} ms")


def _table(rows: list[dict]) -> str:
    head = ("| endpoint | client | clients | offered req/s | requests | req/s | p50 ms | p95 ms | p99 ms | errors "
            "| client CPU ms/req | server CPU ms/req |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {r['endpoint']} | {r['client']} | {r['concurrency']} | {r['offered_req_per_s'] or 'closed loop'} | "
             f"{r['requests']} | {r['req_per_s']} | {r['p50_ms']} | "
             f"{r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {r['client_cpu_ms_per_req']} | "
             f"{r['server_cpu_ms_per_req']} |" for r in rows]
    return "\n".join([head, *lines])


if __name__ == "__main__":
    sys.exit(main())
