#!/usr/bin/env python
"""Load test of the Space: N concurrent `gradio_client` users hammer the slider-decode and the DDPM endpoints.

    python benchmarks/space_load.py                          # N = 1, 8, 32; 10 s per endpoint and N
    python benchmarks/space_load.py --models tiny --duration 5 --clients 1,8
    python benchmarks/space_load.py --url http://127.0.0.1:7860   # a server that is already running

The app runs in its own process (`spaces_app/app.py` on 127.0.0.1), so the clients' threads do not share its
GIL or its CPU accounting. Each of the N users is one thread with its own `gradio_client.Client` (its own
session, as N browser tabs would be); it sends a request, waits for the result (the PNG downloaded, as a
browser would), and sends the next until the time is up. Requests still running at the deadline finish and
count. Reported per endpoint and N: requests, throughput, p50/p95/max latency, errors, the server's CPU use
(cores: CPU seconds / wall seconds) and the load average of the machine (other jobs share its cores).

For the DDPM it also shows that requests queue instead of running side by side: the app sets
`concurrency_limit=1` on that event (read from the app), and the table's `in-flight max` is the largest
number of DDPM requests that the server was computing at once. The launched app is spaces_app/app.py run
unchanged, with `space_logic.ddpm_stream` wrapped to log when each request's computation began and ended
(server-side times; client-side times would blur the edges by the network and polling delays).

Models (`--models`): `release` loads the VAEs of release/ (and release/ddpm if there is one, else a
random-init UNet of the trained size: latency does not depend on the weights); `tiny` builds tiny random
models on the fly (the tests' sizes); `auto` (default) is `release` when release/ holds a VAE, else `tiny`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DECODE_P95_TARGET_S = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", choices=("auto", "release", "tiny"), default="auto",
                   help="Which models the app serves (see the module docstring).")
    p.add_argument("--url", default=None, help="Load a running app instead of launching one.")
    p.add_argument("--clients", default="1,8,32", help="Comma-separated numbers of concurrent users.")
    p.add_argument("--duration", type=float, default=10.0, help="Seconds of load per endpoint and N.")
    p.add_argument("--endpoints", default="decode,ddpm", help="Comma-separated: decode, ddpm.")
    p.add_argument("--ddpm_count", type=int, default=4, help="Digits per DDPM request.")
    p.add_argument("--ddpm_steps", type=int, default=10, help="Denoising steps per DDPM request.")
    p.add_argument("--sampler", default="dpmsolver++", help="DDPM sampler.")
    p.add_argument("--torch_threads", type=int, default=1,
                   help="GENLAB_TORCH_THREADS for the launched app (the Space's default is 1).")
    p.add_argument("--no_download", action="store_true",
                   help="Do not fetch the result PNGs (a browser does; by default each user downloads them).")
    p.add_argument("--client_nice", type=int, default=10,
                   help="Niceness added to the clients' process once the app runs: real users run on other "
                        "machines, so here the clients should not take CPU from the server (0 disables).")
    p.add_argument("--processes", type=int, default=1,
                   help="Spread the users over this many client processes (one Python process saturates its "
                        "GIL at about one core of gradio_client work; 1 keeps every user in this process).")
    p.add_argument("--decode_limit", type=int, default=None,
                   help="Experiment: run the launched app with this concurrency_limit on the slider decode "
                        "instead of the app's own.")
    p.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------------------
# Models and the server process
# ------------------------------------------------------------------------------------------------------------
def build_models(kind: str, root: Path) -> tuple[dict[str, str], str]:
    """{name: folder} for GENLAB_MODELS, and a one-line description."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    from hub_models import ConvVAE

    release = REPO_ROOT / "release"
    vaes = sorted(d for d in release.glob("vae-*") if (d / "config.json").is_file()) if release.is_dir() else []
    if kind == "auto":
        kind = "release" if vaes else "tiny"
    torch.manual_seed(0)
    if kind == "release":
        if not vaes:
            raise SystemExit("--models release: no release/vae-* folder with a config.json")
        models = {d.name: str(d) for d in vaes}
        if (release / "ddpm" / "model_index.json").is_file():
            models["ddpm"], ddpm = str(release / "ddpm"), "release/ddpm"
        else:
            from hub_models.ddpm import make_train_scheduler, save_pipeline
            from hub_models.unet import count_parameters, unet_config

            unet = UNet2DModel(**unet_config("default"))
            save_pipeline(unet, make_train_scheduler(), root / "ddpm")
            models["ddpm"] = str(root / "ddpm")
            ddpm = f"random-init UNet of the trained size ({count_parameters(unet) / 1e6:.1f}M parameters)"
        if (release / "digit-classifier" / "config.json").is_file():
            models["digit-classifier"] = str(release / "digit-classifier")
        return models, f"release/ VAEs ({', '.join(d.name for d in vaes)}) + {ddpm}"
    ConvVAE(latent_dim=2).save_pretrained(root / "vae-conv-z2-beta1")
    unet = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=4000, beta_schedule="squaredcos_cap_v2")
                 ).save_pretrained(root / "ddpm")
    return ({"vae-conv-z2-beta1": str(root / "vae-conv-z2-beta1"), "ddpm": str(root / "ddpm")},
            "tiny random models (conv VAE z=2; UNet (8, 16) channels)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs spaces_app/app.py unchanged, with `space_logic.ddpm_stream` wrapped to log, for every DDPM request,
# when its computation began (the generator's first step: gradio runs it when the queue lets it start) and
# ended, on the monotonic clock that this process shares with the server's.
SERVER_WRAPPER = """
import json, os, runpy, sys, time
from hub_models import space_logic as sl
log = open(os.environ["SPACE_LOAD_DDPM_LOG"], "a", buffering=1)
stream = sl.ddpm_stream
def logged_stream(*args, **kwargs):
    start = time.monotonic()
    try:
        yield from stream(*args, **kwargs)
    finally:
        log.write(json.dumps([start, time.monotonic()]) + "\\n")
sl.ddpm_stream = logged_stream
if os.environ.get("SPACE_LOAD_DECODE_LIMIT"):  # experiment: another concurrency limit on the slider decode
    import gradio as gr
    on = gr.on
    def on_with_limit(*args, **kwargs):
        if kwargs.get("api_name") == "decode_latent":
            kwargs["concurrency_limit"] = int(os.environ["SPACE_LOAD_DECODE_LIMIT"])
        return on(*args, **kwargs)
    gr.on = on_with_limit
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def launch(models: dict[str, str], torch_threads: int, log: Path, ddpm_log: Path,
           decode_limit: int | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, GENLAB_TORCH_THREADS=str(torch_threads), GRADIO_ANALYTICS_ENABLED="False",
               GENLAB_CALIBRATION_DIGITS=os.environ.get("GENLAB_CALIBRATION_DIGITS", "1000"),
               SPACE_LOAD_DDPM_LOG=str(ddpm_log), SPACE_LOAD_DECODE_LIMIT=str(decode_limit or ""))
    cmd = [sys.executable, "-c", SERVER_WRAPPER, str(REPO_ROOT / "spaces_app" / "app.py"), "--port", str(port),
           "--host", "127.0.0.1", "--models", ",".join(f"{k}={v}" for k, v in models.items())]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    import httpx

    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the app did not start in 300 s; see {log}")


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process and its threads (from /proc; Linux only)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    endpoint: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    intervals: list[tuple[float, float]] = field(default_factory=list)  # DDPM, server side: (start, end)
    client_cpu_cores: float | None = None
    cpu_cores: float | None = None
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q * 100) - 1]

    def max_in_flight(self) -> int | None:
        """Largest number of intervals that overlap (an end at the same instant as a start does not)."""
        if not self.intervals:
            return None
        events = sorted([(s, 1) for s, _ in self.intervals] + [(e, -1) for _, e in self.intervals],
                        key=lambda t: (t[0], t[1]))
        best = now = 0
        for _, step in events:
            now += step
            best = max(best, now)
        return best


def _decode_args(client, vae: str) -> tuple:
    api = client.view_api(print_info=False, return_format="dict")
    n_sliders = len(api["named_endpoints"]["/decode_latent"]["parameters"]) - 1
    return (vae, *[0.0] * n_sliders)


def _user(endpoint: str, client, args: tuple, deadline: float, result: Result, lock: threading.Lock,
          rng_seed: int) -> None:
    import random

    rng = random.Random(rng_seed)
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            if endpoint == "decode":
                z = [round(rng.uniform(-2.5, 2.5), 2) for _ in args[1:]]  # a slider being dragged
                client.predict(args[0], *z, api_name="/decode_latent")
            else:
                client.predict(*args[:-1], rng.randrange(10**6), api_name="/ddpm_generate")
        except Exception as err:  # counted and reported: the point of a load test
            with lock:
                result.errors.append(f"{type(err).__name__}: {str(err)[:200]}")
            continue
        with lock:
            result.latencies.append(time.perf_counter() - t0)


def read_intervals(ddpm_log: Path | None, since: float) -> list[tuple[float, float]]:
    if ddpm_log is None or not ddpm_log.is_file():
        return []
    rows = [json.loads(line) for line in ddpm_log.read_text().splitlines() if line.strip()]
    return [(a, b) for a, b in rows if a >= since]


def run_load(endpoint: str, clients: list, args: tuple, duration: float, server_pid: int | None,
             ddpm_log: Path | None) -> Result:
    result = Result(endpoint, len(clients), load_before=os.getloadavg())
    lock = threading.Lock()
    since = time.monotonic()
    cpu0, own0, t0 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
    deadline = t0 + duration
    threads = [threading.Thread(target=_user, args=(endpoint, c, args, deadline, result, lock, i), daemon=True)
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    cpu1 = cpu_seconds(server_pid)
    if cpu0 is not None and cpu1 is not None:
        result.cpu_cores = (cpu1 - cpu0) / result.seconds
    result.client_cpu_cores = (time.process_time() - own0) / result.seconds
    if endpoint == "ddpm":
        result.intervals = read_intervals(ddpm_log, since)
    result.load_after = os.getloadavg()
    return result


def _worker(endpoint: str, url: str, n: int, args: tuple, download: str | bool, first_seed: int, ready, go,
            deadline, out) -> None:
    """A client process: n users, started together with the other processes' at `go`, until `deadline`."""
    from gradio_client import Client

    clients = [Client(url, verbose=False, download_files=download) for _ in range(n)]
    ready.put(True)
    go.wait()
    result, lock = Result(endpoint, n), threading.Lock()
    own0 = time.process_time()
    threads = [threading.Thread(target=_user, args=(endpoint, c, args, deadline.value, result, lock,
                                                    first_seed + i), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((result.latencies, result.errors, time.process_time() - own0))


def run_load_processes(endpoint: str, url: str, n: int, processes: int, args: tuple, duration: float,
                       download: str | bool, server_pid: int | None, ddpm_log: Path | None) -> Result:
    """Like run_load, with the n users spread over `processes` client processes (spawned, so none inherits
    this process's threads)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, out, go, deadline = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    shares = [n // processes + (i < n % processes) for i in range(min(processes, n))]
    procs = [ctx.Process(target=_worker, args=(endpoint, url, k, args, download, 1000 * i, ready, go, deadline,
                                               out), daemon=True) for i, k in enumerate(shares)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    result = Result(endpoint, n, load_before=os.getloadavg())
    since, cpu0, t0 = time.monotonic(), cpu_seconds(server_pid), time.perf_counter()
    deadline.value = t0 + duration  # perf_counter is the system-wide monotonic clock on Linux
    go.set()
    client_cpu = 0.0
    for _ in procs:
        latencies, errors, cpu = out.get(timeout=duration + 600)
        result.latencies += latencies
        result.errors += errors
        client_cpu += cpu
    for p in procs:
        p.join(timeout=30)
    result.seconds = time.perf_counter() - t0
    cpu1 = cpu_seconds(server_pid)
    if cpu0 is not None and cpu1 is not None:
        result.cpu_cores = (cpu1 - cpu0) / result.seconds
    result.client_cpu_cores = client_cpu / result.seconds
    if endpoint == "ddpm":
        result.intervals = read_intervals(ddpm_log, since)
    result.load_after = os.getloadavg()
    return result


def ddpm_concurrency_limit() -> int | None:
    """The concurrency limit spaces_app/app.py sets on the DDPM event (gradio's /config does not say it):
    read from the app built with no models."""
    import importlib.util

    from hub_models import space_logic as sl

    spec = importlib.util.spec_from_file_location("space_app", REPO_ROOT / "spaces_app" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo(sl.Registry())
    for fn in demo.fns.values():
        if fn.api_name == "ddpm_generate":
            return fn.concurrency_limit
    return None


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------
def table(results: list[Result], ddpm_limit: int | None) -> str:
    def ms(x: float | None) -> str:
        return "—" if x is None else f"{x * 1000:,.0f}"

    lines = ["| endpoint | users | requests | req/s | p50 ms | p95 ms | max ms | errors | in-flight max "
             "| CPU cores: server / clients | load avg (1 min) before → after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        in_flight = "—" if r.endpoint != "ddpm" or r.max_in_flight() is None else \
            f"{r.max_in_flight()} (limit {ddpm_limit})"
        cpu = ("—" if r.cpu_cores is None else f"{r.cpu_cores:.2f}") + f" / {r.client_cpu_cores or 0:.2f}"
        lines.append(f"| {r.endpoint} | {r.clients} | {len(r.latencies)} | {r.throughput:.1f} | "
                     f"{ms(r.quantile(0.5))} | {ms(r.quantile(0.95))} | "
                     f"{ms(max(r.latencies) if r.latencies else None)} | {len(r.errors)} | {in_flight} | {cpu} | "
                     f"{r.load_before[0]:.1f} → {r.load_after[0]:.1f} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from gradio_client import Client

    counts = [int(n) for n in args.clients.split(",") if n.strip()]
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    work = Path(tempfile.mkdtemp(prefix="space-load-"))
    proc, description, ddpm_log = None, "the running app at " + str(args.url), None
    try:
        if args.url:
            url = args.url
        else:
            models, description = build_models(args.models, work / "models")
            print(f"launching the app with {description} …", flush=True)
            t = time.perf_counter()
            ddpm_log = work / "ddpm_intervals.jsonl"
            proc, url = launch(models, args.torch_threads, work / "app.log", ddpm_log, args.decode_limit)
            print(f"app up at {url} in {time.perf_counter() - t:.0f} s (log: {work / 'app.log'})", flush=True)
        pid = proc.pid if proc else None
        if args.client_nice:
            os.nice(args.client_nice)  # the app keeps its own priority
        downloads = work / "downloads"
        clients = [Client(url, verbose=False, download_files=False if args.no_download else str(downloads))
                   for _ in range(max(counts))]
        vae = clients[0].view_api(print_info=False, return_format="dict")["named_endpoints"]["/vae_generate"][
            "parameters"][0].get("parameter_default")
        decode_args = _decode_args(clients[0], vae)
        ddpm_args = (args.sampler, args.ddpm_steps, args.ddpm_count, 0)
        ddpm_limit = ddpm_concurrency_limit()
        # Warm-up: the first decode and DDPM requests pay one-off costs (model pages, PNG encoder, scheduler).
        clients[0].predict(*decode_args, api_name="/decode_latent")
        if "ddpm" in endpoints:
            clients[0].predict(*ddpm_args, api_name="/ddpm_generate")
        print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; {args.processes} client "
              f"process(es); decode model {vae}; DDPM "
              f"{args.ddpm_count} digits × {args.ddpm_steps} {args.sampler} steps; {args.duration:g} s per run",
              flush=True)
        results = []
        for endpoint in endpoints:
            for n in counts:
                call_args = decode_args if endpoint == "decode" else ddpm_args
                if args.processes > 1 and n > 1:
                    r = run_load_processes(endpoint, url, n, args.processes, call_args, args.duration,
                                           False if args.no_download else str(downloads), pid, ddpm_log)
                else:
                    r = run_load(endpoint, clients[:n], call_args, args.duration, pid, ddpm_log)
                results.append(r)
                print(f"  {endpoint:6s} N={n:<3d} {len(r.latencies):5d} requests in {r.seconds:5.1f} s, "
                      f"{len(r.errors)} errors", flush=True)
                for e in sorted(set(r.errors))[:5]:
                    print(f"    error: {e}")
        print()
        print(f"Models: {description}.")
        print(table(results, ddpm_limit))
        decode = [r for r in results if r.endpoint == "decode"]
        ddpm = [r for r in results if r.endpoint == "ddpm"]
        verdicts = []
        if decode:
            worst = decode[-1]
            ok = worst.quantile(0.95) is not None and worst.quantile(0.95) < DECODE_P95_TARGET_S and not worst.errors
            verdicts.append(f"decode, {worst.clients} users: p95 {worst.quantile(0.95) or float('nan'):.3f} s, "
                            f"{len(worst.errors)} errors → {'PASS' if ok else 'FAIL'} (target p95 < "
                            f"{DECODE_P95_TARGET_S:g} s, 0 errors)")
        if ddpm:
            peaks = [r.max_in_flight() for r in ddpm if r.max_in_flight() is not None]
            peak = max(peaks) if peaks else None
            ok = None not in (ddpm_limit, peak) and peak <= ddpm_limit and not any(r.errors for r in ddpm)
            verdicts.append(f"DDPM: at most {peak} request(s) computing at once (concurrency limit {ddpm_limit}), "
                            f"{sum(len(r.errors) for r in ddpm)} errors → {'PASS' if ok else 'FAIL'}")
        for v in verdicts:
            print(v)
        if args.json:
            Path(args.json).write_text(json.dumps({
                "models": description, "cpus": os.cpu_count(), "duration": args.duration,
                "ddpm": {"count": args.ddpm_count, "steps": args.ddpm_steps, "sampler": args.sampler,
                         "concurrency_limit": ddpm_limit},
                "results": [{"endpoint": r.endpoint, "clients": r.clients, "requests": len(r.latencies),
                             "seconds": r.seconds, "throughput": r.throughput, "p50": r.quantile(0.5),
                             "p95": r.quantile(0.95), "max": max(r.latencies) if r.latencies else None,
                             "errors": r.errors, "max_in_flight": r.max_in_flight() if r.endpoint == "ddpm"
                             else None, "server_cpu_cores": r.cpu_cores, "load_before": r.load_before,
                             "load_after": r.load_after, "client_cpu_cores": r.client_cpu_cores,
                             "ddpm_intervals": r.intervals} for r in results],
                "verdicts": verdicts}, indent=2))
        return 0 if all("PASS" in v for v in verdicts) else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main(parse_args()))
