#!/usr/bin/env python
"""Latency of the Space, measured through `gradio_client` against the app launched in-process on 127.0.0.1.

    python benchmarks/space_latency.py                 # the models of release/ (or $GENLAB_MODELS)
    python benchmarks/space_latency.py --dummy         # random-init models of the real sizes (no release needed)
    python benchmarks/space_latency.py --url http://127.0.0.1:7860   # a server that is already running
    python benchmarks/space_latency.py --dummy --ddpm_model ddpm-conditional --digit 7   # a chosen digit

Targets (server side, this 2-vCPU machine): a slider decode ≤ 20 ms; a 16-digit DDPM grid with the default
sampler ≤ 3 s. For each endpoint it prints the compute time (the `hub_models.space` call alone) and the
round trip through gradio_client (queue, PNG encoding, HTTP on loopback; the image is not downloaded), then the
ratio to the target.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
# Gradio's own per-request timings (queue wait, preprocess, fn call, postprocess incl. PNG encoding): the
# server-side figure. Must be set before gradio is imported.
os.environ.setdefault("GRADIO_PROFILING", "1")

from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE  # noqa: E402
from hub_models.space.diffusion import (  # noqa: E402
    DEFAULT_DDPM_STEPS,
    DEFAULT_SAMPLER,
    EVERY_DIGIT,
    ddpm_grid,
    ddpm_request,
)

DECODE_TARGET_S, DDPM_TARGET_S = 0.020, 3.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None, help="Benchmark a running app instead of launching one.")
    p.add_argument("--dummy", action="store_true",
                   help="Launch with random-init models of the release sizes (conv z=2 VAE, 3.3M UNet).")
    p.add_argument("--decode_calls", type=int, default=60, help="Slider decodes to time.")
    p.add_argument("--ddpm_runs", type=int, default=3, help="DDPM grids to time (0 skips the DDPM).")
    p.add_argument("--ddpm_steps", type=int, default=None, help="Denoising steps (default: the Space's default).")
    p.add_argument("--ddpm_model", default=None,
                   help="DDPM to time (default: the Space's default one); with --dummy: ddpm or ddpm-conditional.")
    p.add_argument("--digit", default="any",
                   help="The Generate tab's digit: 'any', 0-9 or 'every' (a row per digit; class-conditional "
                        "models), at the Space's default guidance.")
    p.add_argument("--vae", default=None, help="VAE name for the slider (default: the first loaded).")
    p.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    return p.parse_args(argv)


def make_dummy_models(root: Path) -> dict[str, str]:
    """Random weights, real shapes: latency does not depend on the weights' values."""
    import torch
    from diffusers import UNet2DModel

    from hub_models import ConvVAE
    from hub_models.diffusion.pipeline import make_train_scheduler, save_pipeline
    from hub_models.models.unet import unet_config

    torch.manual_seed(0)
    ConvVAE(latent_dim=2).save_pretrained(root / "vae-conv-z2-beta1")
    save_pipeline(UNet2DModel(**unet_config("default")), make_train_scheduler(), root / "ddpm")
    # the class-conditional release's shape: 10 digits + the null class
    save_pipeline(UNet2DModel(**unet_config("default"), num_class_embeds=11), make_train_scheduler(),
                  root / "ddpm-conditional")
    return {name: str(root / name) for name in ("vae-conv-z2-beta1", "ddpm", "ddpm-conditional")}


def summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"n": len(times), "median_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
            "min_ms": 1000 * times[0]}


def server_side(url: str, fn_name: str) -> dict[str, float] | None:
    """Gradio's profiling traces of `fn_name`: total server time per request (None when profiling is off)."""
    import httpx

    try:
        traces = httpx.get(url.rstrip("/") + "/gradio_api/profiling/traces", timeout=10).json()
    except Exception:
        return None
    mine = [t for t in traces if t.get("fn_name") == fn_name]
    if not mine:
        return None
    out = summary([t["total_ms"] / 1000 for t in mine])
    for phase in ("queue_wait", "preprocess", "fn_call", "postprocess"):
        out[f"{phase}_median_ms"] = statistics.median(t[f"{phase}_ms"] for t in mine)
    return out


def clear_traces(url: str) -> None:
    import httpx

    try:
        httpx.post(url.rstrip("/") + "/gradio_api/profiling/clear", timeout=10)
    except Exception:
        pass


def launch(args: argparse.Namespace) -> tuple[Any, str, float | None, Any]:
    """(demo or None, url, start-up seconds, temporary folder or None): the app launched in-process (with dummy
    models if asked), or the running server of `--url`."""
    if args.url is not None:
        return None, args.url, None, None
    tmp = None
    if args.dummy:
        tmp = tempfile.TemporaryDirectory(prefix="space-bench-")
        sources = make_dummy_models(Path(tmp.name))
        os.environ["GENLAB_MODELS"] = ",".join(f"{k}={v}" for k, v in sources.items())
    spec = importlib.util.spec_from_file_location("space_app", REPO_ROOT / "spaces_app" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    t0 = time.perf_counter()
    demo = app.create_demo()
    startup = time.perf_counter() - t0
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs())
    return demo, demo.local_url, startup, tmp


def time_decode(client: Any, url: str, demo: Any, vae: str, n_sliders: int, calls: int) -> dict:
    """The slider decode: round trip, gradio's server-side time and (in-process) the library call alone."""
    import numpy as np

    from hub_models.space.latent import decode_latent

    rng = np.random.default_rng(0)
    values = [[vae, *np.round(rng.uniform(-2, 2, n_sliders), 2).tolist()] for _ in range(calls)]
    client.predict(*values[0], api_name="/decode_latent")  # warm-up
    clear_traces(url)
    round_trips = []
    for v in values:
        t = time.perf_counter()
        client.predict(*v, api_name="/decode_latent")
        round_trips.append(time.perf_counter() - t)
    out = {"decode_round_trip": summary(round_trips), "decode_server": server_side(url, "decode_latent")}
    if demo is not None:
        entry = demo.registry.vaes[vae]
        compute = []
        for v in values:
            t = time.perf_counter()
            decode_latent(entry, v[1:])
            compute.append(time.perf_counter() - t)
        out["decode_compute"] = summary(compute)
    return out


def time_ddpm_cpu(entry: Any, args: argparse.Namespace, digit: str) -> dict:
    """CPU time of the sampling alone (one thread): what an idle core needs, whatever the load."""
    import torch

    from hub_models.diffusion.sampling import sample_images

    req = ddpm_request(entry, DEFAULT_SAMPLER, args.ddpm_steps or DEFAULT_DDPM_STEPS, 16, 0, digit,
                       entry.default_guidance)
    cpu = []
    for run in range(2):
        c = time.thread_time()
        sample_images(entry.unet, entry.scheduler_config, sampler=req.sampler, num_inference_steps=req.steps,
                      num_images=req.count, generator=torch.Generator().manual_seed(run),
                      autocast_dtype=entry.cpu_dtype, class_labels=req.class_labels, guidance_scale=req.guidance)
        cpu.append(time.thread_time() - c)
    return {"ddpm_compute_cpu": summary(cpu)}


def _ddpm_job(client: Any, args: argparse.Namespace, steps: int, run: int, digit: str, w: float
              ) -> tuple[float, float | None, str]:
    """(round trip, first streamed update, final status) of one /ddpm_generate call."""
    t = time.perf_counter()
    job = client.submit(DEFAULT_SAMPLER, steps, 16, run, digit, w, args.ddpm_model, api_name="/ddpm_generate")
    first = None
    for _ in job:
        first = first or time.perf_counter() - t
    _, status = job.result()
    if "done" not in status:
        raise RuntimeError(f"DDPM run did not finish: {status}")
    return time.perf_counter() - t, first, status


def time_ddpm(client: Any, url: str, demo: Any, args: argparse.Namespace, digit: str) -> dict:
    """The 16-digit grid with the defaults through the UI, alternating (in-process) with the same grid without it."""
    steps = args.ddpm_steps or DEFAULT_DDPM_STEPS
    entry = demo.registry.require_ddpm(args.ddpm_model) if demo is not None else None
    w = entry.default_guidance if entry is not None else DEFAULT_GUIDANCE_SCALE
    totals, firsts, grids, status = [], [], [], ""
    for run in range(args.ddpm_runs + 1):  # run 0 warms up
        if run == 1:
            clear_traces(url)
        if demo is not None:  # side by side: the same grid without the UI (no streaming, no PNGs)
            t = time.perf_counter()
            ddpm_grid(entry, DEFAULT_SAMPLER, steps, 16, run, digit, w)
            if run > 0:
                grids.append(time.perf_counter() - t)
        total, first, status = _ddpm_job(client, args, steps, run, digit, w)
        if run > 0:
            totals.append(total)
            firsts.append(first)
    out = {"ddpm_round_trip": summary(totals)}
    if grids:
        out["ddpm_grid_wall"] = summary(grids)
        out["ddpm_round_trip_over_grid"] = statistics.median(totals) / statistics.median(grids)
    out["ddpm_server"] = server_side(url, "ddpm_generate")
    out["ddpm_first_update"] = summary(firsts)
    out["ddpm_settings"] = {"model": args.ddpm_model, "digit": digit, "guidance": w, "sampler": DEFAULT_SAMPLER,
                            "steps": steps, "digits": 16, "last_status": status}
    return out


def print_report(results: dict, url: str, startup: float | None) -> None:
    load = results["load_average_1min"]
    print(f"\nSpace latency on {url}" + (f" (start-up {startup:.1f} s)" if startup else "")
          + f"; load average {load:.1f} on {os.cpu_count()} CPUs")
    rows = [("slider decode, compute", results.get("decode_compute"), DECODE_TARGET_S),
            ("slider decode, server side (gradio total)", results.get("decode_server"), DECODE_TARGET_S),
            ("slider decode, gradio_client round trip", results.get("decode_round_trip"), DECODE_TARGET_S),
            ("DDPM 16 digits, compute (CPU s, one core)", results.get("ddpm_compute_cpu"), DDPM_TARGET_S),
            ("DDPM 16 digits, compute (wall, ddpm_grid)", results.get("ddpm_grid_wall"), DDPM_TARGET_S),
            ("DDPM 16 digits, first streamed image", results.get("ddpm_first_update"), DDPM_TARGET_S),
            ("DDPM 16 digits, server side (gradio total)", results.get("ddpm_server"), DDPM_TARGET_S),
            ("DDPM 16 digits, complete grid (round trip)", results.get("ddpm_round_trip"), DDPM_TARGET_S)]
    print(f"{'measure':44} {'median':>10} {'p95':>10} {'target':>8} {'p95/target':>10}")
    for name, s, target in rows:
        if s:
            print(f"{name:44} {s['median_ms']:8.1f}ms {s['p95_ms']:8.1f}ms {1000 * target:6.0f}ms "
                  f"{s['p95_ms'] / (1000 * target):10.2f}")
    for key in ("decode_server", "ddpm_server"):
        if results.get(key):
            phases = {k[:-10]: round(v, 1) for k, v in results[key].items() if k.endswith("_median_ms")
                      and k != "median_ms"}
            print(f"{key} phases (median ms): {phases}")
    if "ddpm_round_trip_over_grid" in results:
        print(f"DDPM round trip / the same grid without the UI (alternating runs): "
              f"{results['ddpm_round_trip_over_grid']:.2f}×")
    if "ddpm_settings" in results:
        print(f"DDPM defaults: {results['ddpm_settings']}")


def main(args: argparse.Namespace) -> dict:
    from gradio_client import Client

    demo, url, startup, tmp = launch(args)
    client = Client(url, verbose=False, download_files=False)
    digit = EVERY_DIGIT if args.digit == "every" else args.digit
    results: dict = {"url": url, "startup_s": startup}
    try:
        if demo is not None:
            reg = demo.registry
            results["models"] = {"vaes": list(reg.vaes), "ddpm": reg.ddpm is not None,
                                 "calibration_digits": 0 if reg.test is None else len(reg.test.labels)}
        info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        n_sliders = len(info["/decode_latent"]["parameters"]) - 1
        vae = args.vae or info["/decode_latent"]["parameters"][0].get("example_input")
        if demo is not None:
            vae = args.vae or next(iter(demo.registry.vaes))
        results.update(time_decode(client, url, demo, vae, n_sliders, args.decode_calls))
        if demo is not None and demo.registry.ddpms and args.ddpm_runs > 0:
            results.update(time_ddpm_cpu(demo.registry.require_ddpm(args.ddpm_model), args, digit))
        if "/ddpm_generate" in info and args.ddpm_runs > 0:
            results.update(time_ddpm(client, url, demo, args, digit))
    finally:
        if demo is not None:
            demo.close()
        if tmp is not None:
            tmp.cleanup()
    results["load_average_1min"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_report(results, url, startup)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(parse_args())
