#!/usr/bin/env python
"""Load test of the Space: N concurrent users hammer the slider-decode and the DDPM endpoints, through both
client protocols.

    python benchmarks/space_load.py                          # N = 1, 8, 32; 10 s per endpoint, protocol and N
    python benchmarks/space_load.py --models tiny --duration 5 --clients 1,8
    python benchmarks/space_load.py --url http://127.0.0.1:7860   # a server that is already running

The app runs in its own process (`spaces_app/app.py` on 127.0.0.1). Each of the N users is an asyncio task with
its own HTTP client and sends the next request as soon as the last one is answered, until the time is up, in one
of two protocols (`--protocols`):
- `queue`: gradio's own client protocol, as a browser tab (and `gradio_client`) speaks it: one session per user,
  `POST /gradio_api/queue/join`, then the session's event stream `GET /gradio_api/queue/data` until the result;
- `rest`: gradio's REST call API, as `curl` or any HTTP client uses it: `POST /gradio_api/call/<api>` gives an
  event id, `GET /gradio_api/call/<api>/<event_id>` streams the result (a new session for every request).
Either way the user then downloads the result PNG. Requests still running at the deadline finish and count.
In a browser the sliders no longer call the server (the app decodes them in the page with
`hub_models.space.decoder_js`); `/decode_latent` is what API clients, and a browser whose model has no browser
decoder, call: that is the server path measured here. The app batches it (`batch=True`, up to 32 requests a call).
Reported per endpoint, protocol and N: requests, throughput, p50/p95/max latency, errors, the CPU use of server
and clients (cores: CPU seconds / wall seconds) and the load average of the machine (other jobs share its cores).
Real users run on other machines; here
the clients share the server's 2 cores, so they are kept cheap (a few ms of CPU per request; `gradio_client`
costs 75–100 ms, which made the clients, not the server, the bottleneck) and run at nice +10.

For the DDPM it also shows that requests queue instead of running side by side: the app sets
`concurrency_limit=1` on that event (read from the app), and the table's `in-flight max` is the largest
number of DDPM requests that the server was computing at once. The launched app is spaces_app/app.py run
unchanged, with `hub_models.space.diffusion.ddpm_stream` wrapped to log when each request's computation began and
ended (server-side times; client-side times would blur the edges by the network and polling delays).

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
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from hub_models.reference import RELEASE_VAES  # noqa: E402  (after the checkout is on sys.path)

DECODE_P95_TARGET_S = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", choices=("auto", "release", "tiny"), default="auto",
                   help="Which models the app serves (see the module docstring).")
    p.add_argument("--url", default=None, help="Load a running app instead of launching one.")
    p.add_argument("--clients", default="1,8,32", help="Comma-separated numbers of concurrent users.")
    p.add_argument("--duration", type=float, default=10.0, help="Seconds of load per endpoint and N.")
    p.add_argument("--endpoints", default="decode,ddpm", help="Comma-separated: decode, ddpm.")
    p.add_argument("--protocols", default="queue,rest",
                   help="Comma-separated: queue (gradio's client protocol, as a browser), rest (/gradio_api/call).")
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
    p.add_argument("--decode_limit", type=int, default=None,
                   help="Experiment: run the launched app with this concurrency_limit on the slider decode "
                        "instead of the app's own.")
    p.add_argument("--decode_batch", type=int, default=None,
                   help="Experiment: run the launched app with this max_batch_size on /decode_latent (1: no "
                        "batching in effect) instead of the app's own.")
    p.add_argument("--start_timeout", type=float, default=600.0,
                   help="Seconds to wait for the launched app to answer (a busy 2-core machine needs minutes).")
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
    vaes = [release / name for name in RELEASE_VAES if (release / name / "config.json").is_file()]  # the Space's
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
            from hub_models.diffusion.pipeline import make_train_scheduler, save_pipeline
            from hub_models.models.unet import count_parameters, unet_config

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


# Runs spaces_app/app.py unchanged, with `hub_models.space.diffusion.ddpm_stream` wrapped to log, for every DDPM
# request, when its computation began (the generator's first step: gradio runs it when the queue lets it start) and
# ended, on the monotonic clock that this process shares with the server's.
SERVER_WRAPPER = """
import json, os, runpy, sys, time
from hub_models.space import diffusion
log = open(os.environ["SPACE_LOAD_DDPM_LOG"], "a", buffering=1)
stream = diffusion.ddpm_stream
def logged_stream(*args, **kwargs):
    start = time.monotonic()
    try:
        yield from stream(*args, **kwargs)
    finally:
        log.write(json.dumps([start, time.monotonic()]) + "\\n")
diffusion.ddpm_stream = logged_stream
if os.environ.get("SPACE_LOAD_DECODE_LIMIT") or os.environ.get("SPACE_LOAD_DECODE_BATCH"):
    # experiment: another concurrency limit / batch size on /decode_latent than the app's own
    from gradio.blocks import BlocksConfig
    set_trigger = BlocksConfig.set_event_trigger
    def set_trigger_for_experiment(self, *args, **kwargs):
        if kwargs.get("api_name") == "decode_latent":
            if os.environ.get("SPACE_LOAD_DECODE_LIMIT"):
                kwargs["concurrency_limit"] = int(os.environ["SPACE_LOAD_DECODE_LIMIT"])
            if os.environ.get("SPACE_LOAD_DECODE_BATCH"):
                kwargs["max_batch_size"] = int(os.environ["SPACE_LOAD_DECODE_BATCH"])
        return set_trigger(self, *args, **kwargs)
    BlocksConfig.set_event_trigger = set_trigger_for_experiment
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def launch(models: dict[str, str], torch_threads: int, log: Path, ddpm_log: Path,
           decode_limit: int | None = None, start_timeout: float = 600.0,
           decode_batch: int | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, GENLAB_TORCH_THREADS=str(torch_threads), GRADIO_ANALYTICS_ENABLED="False",
               GENLAB_CALIBRATION_DIGITS=os.environ.get("GENLAB_CALIBRATION_DIGITS", "1000"),
               SPACE_LOAD_DDPM_LOG=str(ddpm_log), SPACE_LOAD_DECODE_LIMIT=str(decode_limit or ""),
               SPACE_LOAD_DECODE_BATCH=str(decode_batch or ""))
    cmd = [sys.executable, "-c", SERVER_WRAPPER, str(REPO_ROOT / "spaces_app" / "app.py"), "--port", str(port),
           "--host", "127.0.0.1", "--models", ",".join(f"{k}={v}" for k, v in models.items())]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}/"
    import httpx

    deadline = time.time() + start_timeout
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
    raise SystemExit(f"the app did not start in {start_timeout:g} s; see {log}")


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
    protocol: str = "queue"
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


def _user_args(endpoint: str, args: tuple, rng) -> list:
    if endpoint == "decode":  # a slider being dragged: the model, then random z values
        return [args[0], *[round(rng.uniform(-2.5, 2.5), 2) for _ in args[1:]]]
    return [*args[:3], rng.randrange(10**6), *args[4:]]  # the DDPM settings with a fresh seed


async def _call(http, url: str, session: str, fn_index: int, data: list, download: bool) -> None:
    """One request as a browser tab makes it: join the queue in the tab's session, read the session's event
    stream until the result arrives, fetch the image."""
    r = await http.post(f"{url}gradio_api/queue/join",
                        json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None})
    r.raise_for_status()
    message: dict = {}
    async with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") in ("process_completed", "close_stream", "unexpected_error"):
                    break
    output = message.get("output") or {}
    if message.get("msg") != "process_completed" or not message.get("success"):
        raise RuntimeError(f"{message.get('msg')}: {str(output.get('error') or message)[:200]}")
    await _download(http, output["data"][0], download)


async def _call_rest(http, url: str, api_name: str, data: list, download: bool) -> None:
    """One request through gradio's REST API: POST the inputs, read the event's stream to its `complete`."""
    r = await http.post(f"{url}gradio_api/call/{api_name}", json={"data": data})
    r.raise_for_status()
    event, payload = None, None
    async with http.stream("GET", f"{url}gradio_api/call/{api_name}/{r.json()['event_id']}") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line[5:]) if line[5:].strip() not in ("", "null") else None
                break
    if event != "complete" or not payload:
        raise RuntimeError(f"{event}: {str(payload)[:200]}")
    await _download(http, payload[0], download)


async def _download(http, image, download: bool) -> None:
    if download and isinstance(image, dict) and image.get("url"):
        (await http.get(image["url"])).raise_for_status()


async def _user(http, endpoint: str, protocol: str, url: str, fn_index: int, args: tuple, deadline: float,
                result: Result, seed: int, download: bool) -> None:
    import random
    import uuid

    rng, session = random.Random(seed), uuid.uuid4().hex[:11]  # one session per user, as one browser tab
    async with http:
        while True:  # at least one request, then until the deadline
            t0 = time.perf_counter()
            try:
                data = _user_args(endpoint, args, rng)
                if protocol == "rest":
                    await _call_rest(http, url, API_NAMES[endpoint], data, download)
                else:
                    await _call(http, url, session, fn_index, data, download)
                result.latencies.append(time.perf_counter() - t0)
            except Exception as err:  # counted and reported: the point of a load test
                result.errors.append(f"{type(err).__name__}: {str(err)[:200]}")
            if time.perf_counter() >= deadline:
                break


def read_intervals(ddpm_log: Path | None, since: float) -> list[tuple[float, float]]:
    if ddpm_log is None or not ddpm_log.is_file():
        return []
    rows = [json.loads(line) for line in ddpm_log.read_text().splitlines() if line.strip()]
    return [(a, b) for a, b in rows if a >= since]


def run_load(endpoint: str, url: str, fn_index: int, n: int, args: tuple, duration: float,
             server_pid: int | None, ddpm_log: Path | None, download: bool, protocol: str = "queue") -> Result:
    """n users, each an asyncio task with its own HTTP client, for `duration` seconds."""
    import asyncio

    import httpx

    async def all_users() -> None:
        nonlocal cpu0, own0, t0
        # The users' HTTP clients exist before the clock starts: building one costs ~10–50 ms of CPU (its SSL
        # context), and 32 built inside the run stalled every user's first request behind the others' set-up
        # (a real visitor's browser is on another machine).
        clients = [httpx.AsyncClient(timeout=600) for _ in range(n)]
        cpu0, own0, t0 = cpu_seconds(server_pid), time.process_time(), time.perf_counter()
        deadline = t0 + duration
        await asyncio.gather(*[_user(http, endpoint, protocol, url, fn_index, args, deadline, result, i, download)
                               for i, http in enumerate(clients)])

    result = Result(endpoint, n, protocol, load_before=os.getloadavg())
    since = time.monotonic()
    cpu0, own0, t0 = None, 0.0, 0.0
    asyncio.run(all_users())
    result.seconds = time.perf_counter() - t0
    cpu1 = cpu_seconds(server_pid)
    if cpu0 is not None and cpu1 is not None:
        result.cpu_cores = (cpu1 - cpu0) / result.seconds
    result.client_cpu_cores = (time.process_time() - own0) / result.seconds
    if endpoint == "ddpm":
        result.intervals = read_intervals(ddpm_log, since)
    result.load_after = os.getloadavg()
    return result


def ddpm_concurrency_limit() -> int | None:
    """The concurrency limit spaces_app/app.py sets on the DDPM event (gradio's /config does not say it):
    read from the app built with no models."""
    import importlib.util

    from hub_models.space.registry import Registry

    spec = importlib.util.spec_from_file_location("space_app", REPO_ROOT / "spaces_app" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo(Registry())
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

    lines = ["| endpoint | protocol | users | requests | req/s | p50 ms | p95 ms | max ms | errors | in-flight max "
             "| CPU cores: server / clients | load avg (1 min) before → after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        in_flight = "—" if r.endpoint != "ddpm" or r.max_in_flight() is None else \
            f"{r.max_in_flight()} (limit {ddpm_limit})"
        cpu = ("—" if r.cpu_cores is None else f"{r.cpu_cores:.2f}") + f" / {r.client_cpu_cores or 0:.2f}"
        lines.append(f"| {r.endpoint} | {r.protocol} | {r.clients} | {len(r.latencies)} | {r.throughput:.1f} | "
                     f"{ms(r.quantile(0.5))} | {ms(r.quantile(0.95))} | "
                     f"{ms(max(r.latencies) if r.latencies else None)} | {len(r.errors)} | {in_flight} | {cpu} | "
                     f"{r.load_before[0]:.1f} → {r.load_after[0]:.1f} |")
    return "\n".join(lines)


API_NAMES = {"decode": "decode_latent", "ddpm": "ddpm_generate"}


def api_info(url: str) -> tuple[str, int, dict[str, int]]:
    """The decode endpoint's default model, its number of latent sliders, and each endpoint's fn_index."""
    import httpx

    params = httpx.get(f"{url}gradio_api/info", timeout=30).json()["named_endpoints"]["/decode_latent"][
        "parameters"]
    config = httpx.get(f"{url}config", timeout=30).json()
    ids = {dep.get("api_name"): dep["id"] for dep in config["dependencies"]}
    return params[0].get("parameter_default"), len(params) - 1, {e: ids[a] for e, a in API_NAMES.items()}


def pass_or_fail(results: list[Result], protocols: list[str], ddpm_limit: int | None) -> list[str]:
    """One verdict line per decode protocol (p95 of the most users against the target) and one for the DDPM
    (requests never computed side by side beyond the app's concurrency limit)."""
    decode = [r for r in results if r.endpoint == "decode"]
    ddpm = [r for r in results if r.endpoint == "ddpm"]
    verdicts = []
    for protocol in protocols:
        runs = [r for r in decode if r.protocol == protocol]
        if not runs:
            continue
        worst = max(runs, key=lambda r: r.clients)
        ok = worst.quantile(0.95) is not None and worst.quantile(0.95) < DECODE_P95_TARGET_S and not worst.errors
        verdicts.append(f"decode ({protocol}), {worst.clients} users: p95 "
                        f"{worst.quantile(0.95) or float('nan'):.3f} s, {len(worst.errors)} errors → "
                        f"{'PASS' if ok else 'FAIL'} (target p95 < {DECODE_P95_TARGET_S:g} s, 0 errors)")
    if ddpm:
        peaks = [r.max_in_flight() for r in ddpm if r.max_in_flight() is not None]
        peak = max(peaks) if peaks else None
        ok = None not in (ddpm_limit, peak) and peak <= ddpm_limit and not any(r.errors for r in ddpm)
        verdicts.append(f"DDPM: at most {peak} request(s) computing at once (concurrency limit {ddpm_limit}), "
                        f"{sum(len(r.errors) for r in ddpm)} errors → {'PASS' if ok else 'FAIL'}")
    return verdicts


def write_json(path: Path, args: argparse.Namespace, description: str, ddpm_limit: int | None,
               results: list[Result], verdicts: list[str]) -> None:
    rows = [{"endpoint": r.endpoint, "protocol": r.protocol, "clients": r.clients, "requests": len(r.latencies),
             "seconds": r.seconds, "throughput": r.throughput, "p50": r.quantile(0.5), "p95": r.quantile(0.95),
             "max": max(r.latencies) if r.latencies else None, "errors": r.errors,
             "max_in_flight": r.max_in_flight() if r.endpoint == "ddpm" else None, "server_cpu_cores": r.cpu_cores,
             "load_before": r.load_before, "load_after": r.load_after, "client_cpu_cores": r.client_cpu_cores,
             "ddpm_intervals": r.intervals} for r in results]
    path.write_text(json.dumps({
        "models": description, "cpus": os.cpu_count(), "duration": args.duration,
        "ddpm": {"count": args.ddpm_count, "steps": args.ddpm_steps, "sampler": args.sampler,
                 "concurrency_limit": ddpm_limit},
        "results": rows, "verdicts": verdicts}, indent=2))


def main(args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.clients.split(",") if n.strip()]
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    work = Path(tempfile.mkdtemp(prefix="space-load-"))
    proc, description, ddpm_log = None, "the running app at " + str(args.url), None
    try:
        if args.url:
            url = args.url.rstrip("/") + "/"
        else:
            models, description = build_models(args.models, work / "models")
            print(f"launching the app with {description} …", flush=True)
            t = time.perf_counter()
            ddpm_log = work / "ddpm_intervals.jsonl"
            proc, url = launch(models, args.torch_threads, work / "app.log", ddpm_log, args.decode_limit,
                               args.start_timeout, args.decode_batch)
            print(f"app up at {url} in {time.perf_counter() - t:.0f} s (log: {work / 'app.log'})", flush=True)
        pid = proc.pid if proc else None
        if args.client_nice:
            os.nice(args.client_nice)  # the app keeps its own priority
        vae, n_sliders, fn_index = api_info(url)
        decode_args = (vae, *[0.0] * n_sliders)
        # The app's /ddpm_generate inputs: sampler, steps, count, seed, digit, guidance, model (None: the default)
        ddpm_args = (args.sampler, args.ddpm_steps, args.ddpm_count, 0, "any", 1.0, None)
        ddpm_limit = ddpm_concurrency_limit()
        # Warm-up: the first decode and DDPM requests pay one-off costs (model pages, PNG encoder, scheduler).
        call_args = {"decode": decode_args, "ddpm": ddpm_args}
        for endpoint in endpoints:
            warm = run_load(endpoint, url, fn_index[endpoint], 1, call_args[endpoint], 0.0, None, None,
                            not args.no_download)
            if warm.errors:
                raise SystemExit(f"the warm-up {endpoint} request failed: {warm.errors[0]}")
        print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; decode model {vae}; DDPM "
              f"{args.ddpm_count} digits × {args.ddpm_steps} {args.sampler} steps; {args.duration:g} s per run",
              flush=True)
        results = []
        protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
        for endpoint in endpoints:
            for protocol in protocols:
                for n in counts:
                    r = run_load(endpoint, url, fn_index[endpoint], n, call_args[endpoint], args.duration, pid,
                                 ddpm_log, not args.no_download, protocol)
                    results.append(r)
                    print(f"  {endpoint:6s} {protocol:5s} N={n:<3d} {len(r.latencies):5d} requests in "
                          f"{r.seconds:5.1f} s, {len(r.errors)} errors", flush=True)
                for e in sorted(set(r.errors))[:5]:
                    print(f"    error: {e}")
        print()
        print(f"Models: {description}.")
        print(table(results, ddpm_limit))
        verdicts = pass_or_fail(results, protocols, ddpm_limit)
        for v in verdicts:
            print(v)
        if args.json:
            write_json(Path(args.json), args, description, ddpm_limit, results, verdicts)
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
