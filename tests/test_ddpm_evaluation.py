"""DDPM FID and the sampler sweep on a tiny UNet: real Inception FIDs with N and floor, resumable, in the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import preloaded_python
import pytest
import torch

from hub_models.diffusion.pipeline import make_train_scheduler, save_pipeline
from hub_models.evaluation.ddpm import (
    EVALUATION_FILE,
    Point,
    chunk_folder,
    current_points,
    evaluate_point,
    evaluation_summary,
    generate,
    requested_labels,
    sampled_on,
)
from hub_models.models.unet import make_unet

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "evaluate_ddpm.py"


@pytest.fixture(scope="module")
def evaluated_run(tiny_mnist_cache, tmp_path_factory, run_script) -> Path:
    run = tmp_path_factory.mktemp("ddpm-run")
    torch.manual_seed(0)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), run)
    make_unet("tiny").save_pretrained(run / "unet_non_ema")  # other weights than unet/ (EMA)
    history = [{"epoch": 1, "train_loss": 0.9, "test_loss": 0.8}]
    (run / "metrics.json").write_text(json.dumps({"parameters": 1000, "train_loss": 0.9, "test_loss": 0.8,
                                                  "history": history}))
    run_script("scripts/evaluate_ddpm.py", "--run_dir", str(run), "--num_samples", "12", "--batch_size", "5",
               "--no_ema_samples", "6", "--sweep", "--sweep_samples", "6", "--sweep_samplers", "ddim", "dpmsolver++",
               "--sweep_steps", "2", "3")
    return run


@pytest.mark.slow
def test_every_point_has_fid_with_n_and_floor_and_a_timing(evaluated_run):
    points = json.loads((evaluated_run / EVALUATION_FILE).read_text())["points"]
    assert sorted((p["sampler"], p["steps"], p["num_samples"], p["ema"], p["seed"]) for p in points.values()) == [
        ("ddim", 2, 6, True, 0), ("ddim", 3, 6, True, 0), ("ddpm", 25, 6, False, 1), ("ddpm", 25, 12, True, 1),
        ("dpmsolver++", 2, 6, True, 0), ("dpmsolver++", 3, 6, True, 0)]
    for p in points.values():
        # docs/lab/PROTOCOL.md: the sweep selects on the held-out digits, the main FID reports on the test digits.
        assert p["fid"]["reference"] == ("mnist-test" if p["sampler"] == "ddpm" else "study-test")
        assert p["fid"]["n_gen"] == p["num_samples"] and p["fid"]["preprocessing"] == "tf1-bilinear"
        assert p["fid"]["floor"] is not None and p["fid"]["fid"] > p["fid"]["floor"]  # random UNet: far off
        assert p["seconds_per_16"] > 0 and sum(p["classifier"]["class_counts"]) == p["num_samples"]
        here = "cuda" if torch.cuda.is_available() else "cpu"
        assert p["sampled_on"] == here and p["scored_on"] == here
    assert (evaluated_run / "figures" / "sampler_sweep.png").stat().st_size > 0


@pytest.mark.slow
def test_digits_sampled_on_one_machine_are_scored_on_another(tiny_mnist_cache, tmp_path, run_script):
    """--generate_only samples and stops (on a GPU machine without the FID network, say); the same command without
    it scores the saved digits, and each point says where its digits were sampled and where they were scored."""
    from hub_models.evaluation.ddpm import SAMPLED_ON_FILE, chunk_folder

    run = tmp_path / "run"
    torch.manual_seed(0)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), run)
    command = ["scripts/evaluate_ddpm.py", "--run_dir", str(run), "--sampler", "ddim", "--steps", "2",
               "--num_samples", "6", "--batch_size", "3"]
    run_script(*command, "--generate_only")
    point = Point("ddim", 2, 6, True, 1)
    folder = chunk_folder(run, point)
    assert sorted(p.name for p in folder.glob("chunk-*.npy")) == ["chunk-00000.npy", "chunk-00001.npy"]
    assert json.loads((folder / SAMPLED_ON_FILE).read_text()) == {"chunk-00000.npy": "cpu", "chunk-00001.npy": "cpu"}
    assert not (run / EVALUATION_FILE).exists()  # nothing scored yet

    (folder / SAMPLED_ON_FILE).write_text(json.dumps({"chunk-00000.npy": "cuda", "chunk-00001.npy": "cuda"}))
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("chunk-*.npy")}
    run_script(*command)
    result = json.loads((run / EVALUATION_FILE).read_text())["points"][point.key]
    assert result["sampled_on"] == "cuda" and result["scored_on"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("chunk-*.npy")} == before  # the saved digits, reused
    with pytest.raises(ValueError, match="saved with another batch size"):  # chunk i's seed depends on i
        generate(run, point, batch_size=2)


def test_retime_re_measures_every_timed_ema_point_on_this_machine_and_keeps_the_fids(tmp_path):
    """A sweep sampled over several machines mixes their speeds: --retime times every EMA point again here."""
    from hub_models.evaluation.ddpm import retime_points, sampling_device, weights_digest
    from hub_models.io import cpu_name

    torch.manual_seed(0)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), tmp_path)
    digest = weights_digest(tmp_path, True)

    def point(sampler: str, steps: int, ema: bool, seconds: float | None) -> tuple[str, dict]:
        p = Point(sampler, steps, 8, ema, 0, "bf16" if sampler == "ddim" else "fp32")
        return p.key, {**vars(p), "overrides": [], "weights": digest if ema else "raw",
                       "reference": "study-test", "fid": {"fid": 42.0 + steps}, "seconds_per_16": seconds,
                       "timed_on": "cpu (bf16 convolutions computed in fp32)"}

    points = dict([point("ddim", 2, True, 1e6), point("ddpm", 3, True, 1e6), point("ddpm", 3, False, 1e6),
                   point("dpmsolver++", 2, True, None)])
    (tmp_path / EVALUATION_FILE).write_text(json.dumps({"schema_version": 2, "kind": "ddpm", "points": points}))
    lines: list[str] = []
    assert retime_points(tmp_path, log=lines.append) == 2
    after = json.loads((tmp_path / EVALUATION_FILE).read_text())["points"]
    for key, before in points.items():
        retimed = before["ema"] and before["seconds_per_16"] is not None
        assert after[key]["fid"] == before["fid"]  # the FIDs are untouched
        if retimed:
            assert 0 < after[key]["seconds_per_16"] < 1e6 and after[key]["timed_cpu"] == cpu_name()
            how = Point(before["sampler"], before["steps"], precision=before["precision"])
            assert after[key]["timed_on"] == sampling_device(how)  # this machine's bf16 (native or not) or fp32
        else:  # raw weights (none in a release) and untimed points keep what they had
            assert after[key] == before
    assert len(lines) == 2 and all("was 1000000.00" in line for line in lines)


def test_a_bf16_point_records_that_its_convolutions_ran_in_fp32_where_bf16_is_not_native(tmp_path, monkeypatch):
    import hub_models.io as hub_io

    torch.manual_seed(0)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), tmp_path)
    lines: list[str] = []
    monkeypatch.setattr(hub_io, "native_cpu_bf16", lambda: False)
    bf16 = Point("ddpm", 1, 2, seed=0, precision="bf16")
    generate(tmp_path, bf16, batch_size=1, log=lines.append)
    assert sum("no native bf16" in line for line in lines) == 1  # once per point, not per chunk
    assert sampled_on(chunk_folder(tmp_path, bf16)) == "cpu (bf16 convolutions computed in fp32)"
    fp32 = Point("ddpm", 1, 2, seed=0)
    generate(tmp_path, fp32, batch_size=1, log=lines.append)  # fp32: nothing to say, nothing emulated
    assert sampled_on(chunk_folder(tmp_path, fp32)) == "cpu" and sum("no native bf16" in line for line in lines) == 1
    monkeypatch.setattr(hub_io, "native_cpu_bf16", lambda: True)
    native = Point("ddpm", 1, 2, seed=1, precision="bf16")
    generate(tmp_path, native, batch_size=1, log=lines.append)
    assert sampled_on(chunk_folder(tmp_path, native)) == "cpu" and sum("no native bf16" in line for line in lines) == 1


@pytest.mark.parametrize("other_process", ["saves its chunk", "is killed"])
def test_processes_make_one_point_together(other_process, tmp_path):
    """A chunk another process is making (its lock held) is skipped, then waited for; if that process dies without
    saving it, the waiting one makes it. Either way the digits are those of one process alone."""
    import threading

    from filelock import FileLock

    run = tmp_path / "run"
    torch.manual_seed(0)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), run)
    point = Point("ddpm", 1, 6, seed=0)
    alone = generate(run, point, batch_size=2, results_dir=tmp_path / "alone", log=lambda _: None)
    folder = chunk_folder(run, point)
    folder.mkdir(parents=True)
    other = FileLock(folder / ".chunk-00001.lock")
    other.acquire()  # the other process is making chunk 1
    lines: list[str] = []
    result: list[torch.Tensor] = []
    worker = threading.Thread(target=lambda: result.append(generate(run, point, batch_size=2, log=lines.append)))
    worker.start()
    for _ in range(600):
        if any("waiting for chunk 1" in line for line in lines):
            break
        worker.join(0.1)
    assert any("waiting for chunk 1" in line for line in lines)
    assert sorted(p.name for p in folder.glob("chunk-*.npy")) == ["chunk-00000.npy", "chunk-00002.npy"]
    if other_process == "saves its chunk":
        shutil.copy(chunk_folder(run, point, tmp_path / "alone") / "chunk-00001.npy", folder / "chunk-00001.npy")
    other.release()  # done, or its process died (a dead process's lock is released with it)
    worker.join(60)
    assert torch.equal(result[0], alone)
    made = [line for line in lines if "digits (" in line]
    assert len(made) == (2 if other_process == "saves its chunk" else 3)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_chunk_killed_midway_resumes_from_its_saved_step_with_the_same_digits(sampler, tmp_path, monkeypatch):
    """A long chunk saves its progress as it goes; the process making it next starts from there, not from step 0,
    and the digits are those of an uninterrupted run. A multistep solver saves nothing (it could not resume)."""
    import hub_models.evaluation.ddpm.point as ddpm_eval  # where Point.sample looks them up

    run = tmp_path / "run"
    torch.manual_seed(0)
    save_pipeline(make_unet("tiny"), make_train_scheduler(), run)
    point = Point(sampler, 8, 4, seed=0)
    alone = generate(run, point, batch_size=2, results_dir=tmp_path / "alone", log=lambda _: None)
    monkeypatch.setattr(ddpm_eval, "CHECKPOINT_SECONDS", 0.0)  # save after every step
    sample_images, started_at = ddpm_eval.sample_images, []

    def killed_after_step_5(*args, **kwargs):
        started_at.append(kwargs.get("first_step", 0))

        def callback(i, *rest):
            kwargs["callback"](i, *rest)
            if i == 5 and len(started_at) == 2:  # the second chunk dies midway
                raise KeyboardInterrupt

        return sample_images(*args, **{**kwargs, "callback": callback})

    monkeypatch.setattr(ddpm_eval, "sample_images", killed_after_step_5)
    with pytest.raises(KeyboardInterrupt):
        generate(run, point, batch_size=2, log=lambda _: None)
    folder = chunk_folder(run, point)
    assert [p.name for p in folder.glob("*.progress.safetensors")] == [".chunk-00001-n2.progress.safetensors"]
    lines: list[str] = []
    assert torch.equal(generate(run, point, batch_size=2, log=lines.append), alone)
    assert started_at == [0, 0, 6]
    assert "chunk 1: resuming from step 6" in "\n".join(lines)
    assert not list(folder.glob("*.progress*"))  # gone once its chunk is saved

    multistep = Point("dpmsolver++", 8, 2, seed=0)
    monkeypatch.setattr(ddpm_eval, "sample_images", sample_images)
    generate(run, multistep, batch_size=2, log=lambda _: None)
    assert not list(chunk_folder(run, multistep).glob("*.progress*"))


@pytest.mark.slow
def test_an_interrupted_point_resumes_with_the_same_digits(evaluated_run):
    point = Point("ddpm", 25, 12, True, 1)
    before = generate(evaluated_run, point, batch_size=5)
    first = json.loads((evaluated_run / EVALUATION_FILE).read_text())["points"][point.key]
    chunks = sorted((evaluated_run / "evaluation").glob(f"{point.key}-*/chunk-*.npy"))
    assert len(chunks) == 3  # 5 + 5 + 2
    chunks[-1].unlink()  # as if killed while making the last chunk
    again = evaluate_point(evaluated_run, point, batch_size=5, force=True, timing=False)
    assert torch.equal(generate(evaluated_run, point, batch_size=5), before)
    assert again["fid"]["fid"] == pytest.approx(first["fid"]["fid"], rel=1e-6)


@pytest.mark.slow
def test_retrained_weights_make_old_points_stale(evaluated_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(evaluated_run, run)
    assert len(current_points(run)) == 6
    torch.manual_seed(1)
    make_unet("tiny").save_pretrained(run / "unet")  # "more training" of the EMA weights
    assert [p["ema"] for p in current_points(run)] == [False]
    torch.manual_seed(2)
    make_unet("tiny").save_pretrained(run / "unet_non_ema")
    assert current_points(run) == []
    shutil.rmtree(run / "unet_non_ema")  # a release ships EMA weights only: its raw points cannot be re-checked
    assert [p["ema"] for p in current_points(run)] == [False]


@pytest.mark.slow
def test_a_finalist_rescored_on_the_held_out_digits_is_never_the_headline(evaluated_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(evaluated_run, run)
    data = json.loads((run / EVALUATION_FILE).read_text())
    key = next(k for k, p in data["points"].items() if (p["sampler"], p["steps"]) == ("ddim", 3))
    finalist = dict(data["points"][key], num_samples=50)  # a re-scored finalist: more digits than the headline
    data["points"][key.replace("-n6-", "-n50-")] = finalist
    (run / EVALUATION_FILE).write_text(json.dumps(data))
    summary = evaluation_summary(run)
    assert (summary["main"]["sampler"], summary["main"]["reference"]) == ("ddpm", "mnist-test")
    assert finalist in summary["others"]
    del data["points"][next(k for k, p in data["points"].items() if p["reference"] == "mnist-test" and p["ema"])]
    (run / EVALUATION_FILE).write_text(json.dumps(data))
    assert evaluation_summary(run)["main"] is None  # no headline yet, rather than a selection point as one


@pytest.mark.slow
def test_the_headline_is_the_selected_sampler_and_other_seeds_stay_off_the_sweep(evaluated_run, tmp_path):
    """Other paths reported at the headline's N (the Space's default, the best point) never become the headline, and
    the card check's evaluator points (other seeds, same N) never join the sweep."""
    from hub_models.evaluation.ddpm import PROTOCOL_SWEEP, select_point

    run = tmp_path / "run"
    shutil.copytree(evaluated_run, run)
    data = json.loads((run / EVALUATION_FILE).read_text())
    template = next(p for p in data["points"].values() if p["sampler"] == "ddim" and p["ema"])
    headline = next(p for p in data["points"].values() if p["reference"] == "mnist-test" and p["ema"])

    def point(sampler: str, steps: int, fid: float, **how) -> dict:
        p = {**template, "sampler": sampler, "steps": steps, "precision": "bf16", **how}
        return {**p, "fid": {**template["fid"], "fid": fid, "reference": p["reference"]}}

    plan = [point(s, k, 40.0 - k / 100 if s == "ddpm" else 60.0) for s, steps in PROTOCOL_SWEEP for k in steps]
    # fp32 re-runs of the best three (ancestral 1000, 250, 100): 100 steps within 5 % of the best, so it is chosen
    plan += [point("ddpm", k, f, precision="fp32") for k, f in ((1000, 20.0), (250, 20.5), (100, 20.9))]
    plan += [point("ddpm", 50, 10.0 + s, reference="mnist-test", seed=s) for s in (1, 2, 3)]  # a card check's seeds
    chosen = select_point([p for p in plan if p["reference"] == "study-test"])
    assert (chosen["sampler"], chosen["steps"], chosen["precision"]) == ("ddpm", 100, "fp32")
    best = {**headline, "sampler": "ddpm", "steps": 1000, "precision": "fp32"}  # scored first, lower FID
    selected = {**headline, "sampler": "ddpm", "steps": 100, "precision": "fp32"}
    data["points"] = {f"p{i}": p for i, p in enumerate([best, *plan, selected])}
    (run / EVALUATION_FILE).write_text(json.dumps(data))
    summary = evaluation_summary(run)
    assert (summary["main"]["steps"], summary["main"]["precision"]) == (100, "fp32")
    assert best in summary["others"]
    assert len(summary["sweep"]) == len(plan) - 3 and {p["seed"] for p in summary["sweep"]} == {template["seed"]}


@pytest.mark.slow
def test_report_shows_the_ddpm_fid_claim_and_the_sweep(evaluated_run, tmp_path):
    from hub_models.study.report import write_report

    study = tmp_path / "study"
    study.mkdir()
    text = write_report(study, tmp_path / "docs", ddpm_dir=evaluated_run, evaluate=False).read_text()
    claim = next(line for line in text.splitlines() if line.startswith("| DDPM: FID 28.11"))
    assert "N=12 vs 256 of mnist-test" in claim and "floor" in claim and "**not comparable**" in claim
    assert "Sampler sweep" in text and (tmp_path / "docs" / "figures" / "ddpm" / "sampler_sweep.png").exists()
    assert "raw (non-EMA) weights" in text
    from hub_models.evaluation.ddpm import evaluation_summary

    timed = evaluation_summary(evaluated_run)["sweep"]
    seconds = next(line for line in text.splitlines() if line.startswith("Seconds:"))  # where and how loaded
    assert timed[0]["timed_cpu"] in seconds and f"load average {min(p['load_average'] for p in timed):.1f}" in seconds


@pytest.mark.slow
def test_cli_refuses_a_folder_that_is_not_a_ddpm_run(tmp_path):
    result = preloaded_python.run([SCRIPT, "--run_dir", tmp_path], timeout=120)
    assert result.returncode == 2 and "not a DDPM run folder" in result.stderr


@pytest.mark.slow
def test_update_report_rerenders_only_the_ddpm_parts(evaluated_run, tmp_path):
    """A machine with the DDPM results but not the VAE runs refreshes the DDPM claims and section in place."""
    from hub_models.study.report import update_report

    docs = tmp_path / "docs"
    with pytest.raises(FileNotFoundError, match="does not exist yet"):
        update_report(docs, ddpm_dir=evaluated_run)
    docs.mkdir()
    (docs / "REPORT.md").write_text("\n".join([
        "# The study, reproduced", "", "## Claims of the study, checked", "", "| claim | measured | verdict |",
        "|---|---|---|", "| Dense reconstructs better | BCE 134 vs 149 | **confirmed** |",
        "| DDPM: FID 28.11 | FID 99 (stale) | **partly** |", "", "## All runs", "", "| vae row kept |", "",
        "## DDPM", "", "stale DDPM section", "", "## Anomaly detection (the study's application)", "",
        "| held-out digit | AUROC |", "| 3 | 0.9 |", ""]))
    text = update_report(docs, ddpm_dir=evaluated_run, anomaly_dir=tmp_path / "no-anomaly-run").read_text()
    assert "| Dense reconstructs better | BCE 134 vs 149 |  | **confirmed** |" in text and "| vae row kept |" in text
    assert "| DDPM: U-Net with 3.3M parameters | 1,000 |" in text  # a DDPM claim the old table lacked
    claim = next(line for line in text.splitlines() if line.startswith("| DDPM: FID 28.11"))
    assert "N=12 vs 256 of mnist-test" in claim and "stale" not in text
    assert text.index("## DDPM") < text.index("Sampler sweep") < text.index("## Anomaly detection") < \
        text.index("| 3 | 0.9 |")
    assert (docs / "figures" / "ddpm" / "sampler_sweep.png").exists()


def test_missing_sweep_points_follow_the_protocols_plan_and_precision():
    from hub_models.evaluation.ddpm import PROTOCOL_SWEEP, PROTOCOL_SWEEP_PRECISION, missing_sweep_points

    plan = [(s, k) for s, steps in PROTOCOL_SWEEP for k in steps]
    full = [{"sampler": s, "steps": k, "precision": PROTOCOL_SWEEP_PRECISION} for s, k in plan]
    assert missing_sweep_points(full) == []
    assert missing_sweep_points(full[3:]) == plan[:3]  # in the protocol's order
    fp32 = [{**p, "precision": "fp32"} for p in full]  # another precision does not count
    assert missing_sweep_points(fp32) == plan
    assert ("ddpm", 1000) in plan and ("ddim", 1000) not in plan


def test_conditional_points_request_balanced_classes_whatever_the_chunking():
    assert requested_labels(7, 7).tolist() == [7, 8, 9, 0, 1, 2, 3]
    chunks = torch.cat([requested_labels(min(7, 20 - i), i) for i in range(0, 20, 7)])
    assert torch.equal(chunks, requested_labels(20)) and torch.bincount(chunks).tolist() == [2] * 10
    plain, guided = Point("ddpm", 2, 20), Point("ddpm", 2, 20, guidance_scale=2.0)
    assert plain.labels(5) == {} and guided.key == plain.key + "-w2"
    assert guided.labels(3, 9)["class_labels"].tolist() == [9, 0, 1] and guided.labels(3)["guidance_scale"] == 2.0


def test_guidance_sweep_of_a_conditional_model(conditional_ddpm_run, trained_ddpm_run):
    run = conditional_ddpm_run
    summary = evaluation_summary(run)
    table = summary["guidance"]
    assert [p["guidance_scale"] for p in table] == [0.0, 2.0]
    for p in table:
        assert p["fid"]["reference"] == "study-test" and p["seed"] == 0 and p["fid"]["n_gen"] == 20
        assert p["classifier"]["n"] == 20 and 0 <= p["classifier"]["class_accuracy"] <= 1
        assert len(p["classifier"]["class_accuracy_per_digit"]) == 10
    main = summary["main"]
    assert (main["guidance_scale"], main["num_samples"], main["seed"], main["precision"]) == (2.0, 12, 1, "bf16")
    assert (run / "figures" / "guidance.png").stat().st_size > 0
    # The two scales drew different digits from the same noise (w changes ε unless the labels do nothing).
    digits = [generate(run, Point("ddpm", 3, 20, seed=0, precision="bf16", guidance_scale=w), batch_size=7)
              for w in (0.0, 2.0)]
    assert not torch.equal(*digits)

    refused = preloaded_python.run([SCRIPT, "--run_dir", trained_ddpm_run, "--guidance_sweep", "1"], timeout=300)
    assert refused.returncode == 2 and "unconditional" in refused.stderr


def test_a_conditional_sweep_plots_only_its_own_guidance(conditional_ddpm_run):
    """The sampler sweep of a class-conditional model is at one w: the guidance table's other w are not drawn as
    if they were steps of its `ddpm` line."""
    from hub_models.evaluation.ddpm import sweep_results

    for w in (0.0, 2.0):
        points = sweep_results(conditional_ddpm_run, 20, w)
        assert [p["guidance_scale"] for p in points] == [w]
    assert sweep_results(conditional_ddpm_run, 20) == []  # an unconditional sweep: none of these points


def test_another_path_reported_on_the_test_digits_never_displaces_a_conditional_headline(conditional_ddpm_run,
                                                                                          copy_run):
    """A class-conditional model has no sampler sweep: a second path reported at its headline's N (the Space's
    default, say) is another point, not a 'sweep' of the test digits that would push the headline out."""
    from hub_models.evaluation.ddpm import evaluation_summary

    run = copy_run(conditional_ddpm_run)
    data = json.loads((run / EVALUATION_FILE).read_text())
    headline = evaluation_summary(run)["main"]
    assert headline is not None and headline["reference"] == "mnist-test"
    other = {**headline, "sampler": "sde-dpmsolver++", "steps": headline["steps"] + 1}
    data["points"]["default-path"] = other
    (run / EVALUATION_FILE).write_text(json.dumps(data))
    summary = evaluation_summary(run)
    assert summary["main"] == headline and other in summary["others"] and summary["sweep"] == []


def test_a_conditional_ddpm_opens_on_the_guidance_its_table_chose(conditional_ddpm_run, copy_run):
    """The guidance slider starts at the w of the model's headline, else at the w its guidance table chose
    (docs/lab/PROTOCOL.md), else at 1 (the model as trained)."""
    from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE
    from hub_models.evaluation.ddpm import PROTOCOL_GUIDANCE
    from hub_models.space.sources import load_registry

    run = copy_run(conditional_ddpm_run)
    assert load_registry({"c": str(run)}, calibration_digits=0).ddpm.default_guidance == 2.0  # its headline's w
    path = run / "evaluation.json"
    data = json.loads(path.read_text())
    points = data["points"]
    table = [p for p in points.values() if p["num_samples"] == 20 and p.get("guidance_scale") is not None]
    for key in [k for k, p in points.items() if p["reference"] == "mnist-test" or p in table]:
        del points[key]  # no headline yet, and a partial table (w = 0 and 2)
    points.update({f"table-w{p['guidance_scale']:g}": p for p in table})
    path.write_text(json.dumps(data))
    assert load_registry({"c": str(run)}, calibration_digits=0).ddpm.default_guidance == DEFAULT_GUIDANCE_SCALE
    for i, w in enumerate(PROTOCOL_GUIDANCE):  # the whole table: w = 3 has the lowest FID by far
        fid = {**table[0]["fid"], "fid": 50.0 - 10 * (i == 3)}
        points[f"table-w{w:g}"] = {**table[0], "guidance_scale": w, "fid": fid}
    path.write_text(json.dumps(data))
    entry = load_registry({"c": str(run)}, calibration_digits=0).ddpm
    assert entry.default_guidance == 3.0 and "fid" not in entry.metrics


def test_the_guidance_choice_is_the_lowest_fid_with_ties_to_class_accuracy_and_none_from_a_partial_table():
    from hub_models.evaluation.ddpm import PROTOCOL_GUIDANCE, select_guidance

    def table(fids: dict[float, float], accuracy: dict[float, float]) -> list[dict]:
        return [{"guidance_scale": w, "fid": {"fid": f}, "classifier": {"class_accuracy": accuracy[w]}}
                for w, f in fids.items()]

    fids = {0.0: 20.0, 1.0: 10.0, 2.0: 10.4, 3.0: 10.6, 5.0: 14.0}  # 10.4 ≤ 1.05 × 10 < 10.6
    accuracy = {0.0: 0.1, 1.0: 0.97, 2.0: 0.99, 3.0: 0.995, 5.0: 0.999}
    assert [*fids] == list(PROTOCOL_GUIDANCE)
    assert select_guidance(table(fids, accuracy))["guidance_scale"] == 2.0  # tied with 1, more accurate; 3 is not tied
    fids[2.0] = 10.6  # outside the tie: the lowest FID wins, whatever the accuracy
    assert select_guidance(table(fids, accuracy))["guidance_scale"] == 1.0
    del fids[5.0]
    assert select_guidance(table(fids, accuracy)) is None  # nothing is chosen from a partial table
    assert select_guidance(table(fids, accuracy), scales=(1.0, 2.0))["guidance_scale"] == 1.0


def _plan_sweep(fids: dict[tuple[str, int], float], precision: str = "bf16") -> list[dict]:
    return [{"sampler": s, "steps": k, "precision": precision, "fid": {"fid": f}} for (s, k), f in fids.items()]


def test_the_protocols_selection_ties_within_5_percent_go_to_the_fewest_passes_then_bf16():
    from hub_models.evaluation.ddpm import PROTOCOL_SWEEP, protocol_reruns, select_point

    fids = {(s, k): 30.0 + k / 100 for s, steps in PROTOCOL_SWEEP for k in steps}
    fids[("ddpm", 100)], fids[("ddpm", 25)], fids[("unipc", 50)] = 11.0, 11.54, 11.56  # 11.54 ≤ 1.05 × 11 < 11.56
    sweep = _plan_sweep(fids)
    assert protocol_reruns(sweep[1:]) == [] and select_point(sweep[1:]) is None  # nothing from a partial sweep
    assert protocol_reruns(sweep) == [("ddpm", 100), ("ddpm", 25), ("unipc", 50)]
    assert select_point(sweep) is None  # the fp32 re-runs are still missing
    reruns = {("ddpm", 100): 11.2, ("ddpm", 25): 11.54, ("unipc", 50): 12.0}
    chosen = select_point(sweep + _plan_sweep(reruns, "fp32"))
    assert (chosen["sampler"], chosen["steps"], chosen["precision"]) == ("ddpm", 25, "bf16")  # tied: bf16 first
    fids[("ddpm", 25)] = 11.56  # just outside the tie: the lowest FID wins
    reruns[("ddpm", 25)] = 11.56
    chosen = select_point(_plan_sweep(fids) + _plan_sweep(reruns, "fp32"))
    assert (chosen["sampler"], chosen["steps"], chosen["precision"]) == ("ddpm", 100, "bf16")
    reruns[("ddpm", 100)] = 10.4  # fp32 beats every bf16 point by more than 5 %
    chosen = select_point(_plan_sweep(fids) + _plan_sweep(reruns, "fp32"))
    assert (chosen["sampler"], chosen["steps"], chosen["precision"]) == ("ddpm", 100, "fp32")


@pytest.mark.slow
def test_protocol_mode_runs_the_sweep_reruns_raw_point_and_headline_in_order(evaluated_run, tmp_path, monkeypatch,
                                                                           load_script):

    import hub_models.evaluation.ddpm.protocol as ddpm_eval

    run = tmp_path / "release-ddpm"  # a release folder (EMA only); the raw weights stay in the run it came from
    run.mkdir()
    for part in ("model_index.json", "unet", "scheduler", "metrics.json"):
        src = evaluated_run / part
        if src.is_dir():
            shutil.copytree(src, run / part)
        else:
            shutil.copy(src, run / part)
    monkeypatch.setattr(ddpm_eval, "PROTOCOL_SWEEP", (("ddim", (2, 3)), ("ddpm", (2,))))
    monkeypatch.setattr(ddpm_eval, "PROTOCOL_RERUNS", 1)
    script = load_script("scripts/evaluate_ddpm.py")
    argv = ["--run_dir", str(run), "--protocol", "--precision", "bf16", "--sweep_samples", "6", "--num_samples", "12",
            "--batch_size", "5", "--no_ema_samples", "6", "--raw_run_dir", str(evaluated_run)]
    assert script.main(script.parse_args(argv)) == 0

    points = json.loads((run / EVALUATION_FILE).read_text())["points"].values()
    sweep = [p for p in points if p["num_samples"] == 6 and p["ema"]]
    assert sorted((p["sampler"], p["steps"], p["precision"]) for p in sweep if p["precision"] == "bf16") == [
        ("ddim", 2, "bf16"), ("ddim", 3, "bf16"), ("ddpm", 2, "bf16")]
    best = min((p for p in sweep if p["precision"] == "bf16"), key=lambda p: p["fid"]["fid"])
    assert [(p["sampler"], p["steps"]) for p in sweep if p["precision"] == "fp32"] == [(best["sampler"], best["steps"])]
    assert all(p["reference"] == "study-test" and p["seed"] == 0 for p in sweep)
    chosen = ddpm_eval.select_point(sweep)
    how = (chosen["sampler"], chosen["steps"], chosen["precision"])
    [raw] = [p for p in points if not p["ema"]]
    assert (raw["sampler"], raw["steps"], raw["precision"], raw["num_samples"], raw["reference"]) == (
        *how, 6, "study-test")
    [main] = [p for p in points if p["num_samples"] == 12]
    assert (main["sampler"], main["steps"], main["precision"], main["reference"], main["seed"]) == (
        *how, "mnist-test", 1)
    headline = evaluation_summary(run)["main"]  # the report's and the card's headline
    assert (headline["num_samples"], headline["reference"], headline["steps"]) == (12, "mnist-test", chosen["steps"])

    before = (run / EVALUATION_FILE).read_bytes()
    assert script.main(script.parse_args(argv)) == 0  # all cached: nothing is measured again
    assert (run / EVALUATION_FILE).read_bytes() == before


def _sweep_point(sampler: str, steps: int, timed_on: str | None) -> dict:
    fid = {"fid": 12.0 + steps, "floor": 3.0, "n_gen": 1000, "reference": "study-test", "preprocessing": "tf1-bilinear"}
    return {"sampler": sampler, "steps": steps, "num_samples": 1000, "precision": "bf16", "fid": fid,
            "classifier": {"confident_share": 0.9}, "seconds_per_16": 0.1 * steps, "torch_threads": 1,
            "timed_on": timed_on}


@pytest.mark.parametrize("emulated", [False, True])
def test_seconds_timed_without_native_bf16_are_marked_in_the_report_and_the_plot(emulated, tmp_path):
    from hub_models.evaluation.ddpm import sweep_plot
    from hub_models.study.report import FP32_SPEED_MARK, _ddpm_section

    sweep = [_sweep_point("ddpm", 5, "cpu"),
             _sweep_point("ddim", 5, "cpu (bf16 convolutions computed in fp32)" if emulated else None)]
    text = "\n".join(_ddpm_section({"parameters": 1, "history": [], "sweep": sweep, "sweep_plot": "plot.png"}))
    rows = [line for line in text.splitlines() if line.startswith(("| ddpm |", "| ddim |"))]
    assert [row.endswith(f"0.50{FP32_SPEED_MARK} |") for row in rows] == [False, emulated]
    assert ("fp32-speed seconds of another CPU" in text) == emulated
    assert sweep_plot(sweep, tmp_path / "sweep.png").stat().st_size > 0


def test_processes_scoring_one_point_share_its_inception_features_chunk_by_chunk(tmp_path, monkeypatch):
    """Each chunk's features are computed once, by whichever process gets there first, saved beside the digits,
    and reused by a later (resumed) scoring."""
    import threading
    import time

    import numpy as np

    import hub_models.evaluation.ddpm.chunks as ddpm

    calls = []

    def fake_features(images, batch_size=50, device=None, progress=False):
        calls.append(len(images))
        time.sleep(0.2)  # long enough for the other scorer to find this chunk taken
        return images.reshape(len(images), -1)[:, :4].double().numpy()

    monkeypatch.setattr(ddpm, "inception_features", fake_features)
    images = torch.arange(7 * 28 * 28, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(7, 28, 28)
    results = []
    scorers = [threading.Thread(target=lambda: results.append(ddpm.chunk_features(tmp_path, images, 3, log=print)))
               for _ in range(2)]
    for scorer in scorers:
        scorer.start()
    for scorer in scorers:
        scorer.join()
    expected = images.reshape(7, -1)[:, :4].double().numpy()
    assert sorted(calls) == [1, 3, 3]  # three chunks (3 + 3 + 1 digits), each computed once
    assert all(np.array_equal(r, expected) for r in results) and len(results) == 2
    assert sorted(p.name for p in tmp_path.glob("features-*.npy")) == [f"features-0000{i}.npy" for i in range(3)]
    (tmp_path / "features-00001.npy").unlink()  # a scoring killed before its second chunk was saved
    assert np.array_equal(ddpm.chunk_features(tmp_path, images, 3, log=print), expected)
    assert sorted(calls) == [1, 3, 3, 3]  # only the missing chunk again


@pytest.mark.slow
def test_chunked_features_are_those_of_one_pass_bit_for_bit(tiny_mnist_cache, tmp_path):
    """Chunks of a multiple of Inception's batch of 50 feed it the same batches as one pass over all the digits
    (60 digits: a whole batch, then a short one, both ways)."""
    import numpy as np

    from hub_models.evaluation import reference_images
    from hub_models.evaluation.ddpm import chunk_features
    from hub_models.evaluation.inception import inception_features

    digits = reference_images("study-test", 60)
    assert np.array_equal(chunk_features(tmp_path, digits, 50), inception_features(digits))
