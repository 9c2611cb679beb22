"""Progressive distillation (hub_models.diffusion.distillation, training/distill_ddpm.py) and the frontier mode of
benchmarks/ddpm_sampling_speed.py, on tiny UNets and a few hundred real digits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import preloaded_python
import pytest
import torch
from diffusers import DDPMPipeline
from safetensors.torch import load_file

from hub_models.diffusion import load_ddpm, make_scheduler, make_train_scheduler, sample_images, save_pipeline
from hub_models.diffusion.distillation import (
    distillation_loss,
    distillation_target,
    extended_alphas_cumprod,
    round_steps,
    student_scheduler,
    student_steps,
    student_timesteps,
    teacher_clip,
)
from hub_models.evaluation.ddpm import Point, weights_digest
from hub_models.hub import load
from hub_models.models.unet import make_unet
from hub_models.training.ddpm import make_ddpm_unet
from hub_models.training.distill import DistillTrainer

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "training" / "distill_ddpm.py"
BENCHMARK = REPO_ROOT / "benchmarks" / "ddpm_sampling_speed.py"
# 2 rounds of 3 updates: 8 → 4 → 2 steps; a checkpoint after every update.
TINY = ["--start_steps", "8", "--num_rounds", "2", "--max_train_steps", "3", "--train_batch_size", "32",
        "--limit_train_samples", "128", "--num_sample_images", "4", "--logger", "none",
        "--checkpointing_steps", "1", "--checkpoints_total_limit", "10"]  # fmt: skip


def _run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = preloaded_python.run(cmd, cwd=REPO_ROOT, env=env, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "diffusion_pytorch_model.safetensors"))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("teacher") / "ddpm"
    save_pipeline(make_unet("tiny"), make_train_scheduler(), folder)
    return folder


@pytest.fixture(scope="module")
def student_dir(tiny_mnist_cache, teacher_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student") / "whole"
    _run([SCRIPT, "--teacher_model_name_or_path", teacher_dir, *TINY, "--output_dir", out])
    return out


# ---------------------------------------------------------------------------------------------------------------
# The target
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_an_exact_teacher_makes_the_target_the_true_x0(prediction_type):
    """A teacher that always predicts the true x0 (the ideal denoiser of a one-image data set): the two-step target
    is that x0 at every step of the student's grid (in float64: in float32 an ε-teacher's x0 = (z − σ·ε)/α at
    t = T − 1 divides rounding errors by α ≈ 1e-5)."""
    alphas = extended_alphas_cumprod(make_train_scheduler().config).double()
    x0 = torch.rand(2, 1, 28, 28, dtype=torch.float64) * 2 - 1

    def exact(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = (alphas[t].view(-1, 1, 1, 1).sqrt(), (1 - alphas[t]).view(-1, 1, 1, 1).sqrt())
        eps = (z - a * x0) / s
        return eps if prediction_type == "epsilon" else a * eps - s * x0

    for n in (1, 2, 4):
        for t0 in student_timesteps(4000, n):
            t = torch.full((2,), int(t0))
            a, s = alphas[t].view(-1, 1, 1, 1).sqrt(), (1 - alphas[t]).view(-1, 1, 1, 1).sqrt()
            z = a * x0 + s * torch.randn_like(x0)
            target = distillation_target(exact, z, t, n, alphas, prediction_type, clip=1.0)
            torch.testing.assert_close(target, x0, atol=1e-8, rtol=0)


def test_one_student_ddim_step_lands_where_two_teacher_ddim_steps_land():
    """A student predicting exactly the target's v, sampled with diffusers' DDIM at N steps as the student folder
    says, lands on the teacher's 2N-step DDIM trajectory (library sampler, x0 clipping included) at every step."""
    torch.manual_seed(0)
    teacher = make_unet("tiny").eval()
    config = make_train_scheduler().config
    alphas = extended_alphas_cumprod(config)
    n = 4
    teacher_ddim, student_ddim = (
        make_scheduler("ddim", config),
        make_scheduler("ddim", student_scheduler(config).config),
    )
    teacher_ddim.set_timesteps(2 * n)
    student_ddim.set_timesteps(n)
    assert student_ddim.config.prediction_type == "v_prediction" and not student_ddim.config.clip_sample
    assert (
        student_ddim.timesteps.tolist() == student_timesteps(4000, n).tolist() == teacher_ddim.timesteps[::2].tolist()
    )
    z = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        for i, t0 in enumerate(student_ddim.timesteps):
            t = torch.full((3,), int(t0))
            target = distillation_target(
                lambda x, s: teacher(x, s).sample, z, t, n, alphas, "epsilon", teacher_clip(config)
            )
            a, s = alphas[t].view(-1, 1, 1, 1).sqrt(), (1 - alphas[t]).view(-1, 1, 1, 1).sqrt()
            one_step = student_ddim.step((a * z - target) / s, t0, z, **student_ddim.step_options).prev_sample
            two_steps = z
            for tt in teacher_ddim.timesteps[2 * i : 2 * i + 2]:
                out = teacher(two_steps, tt).sample  # the library's DDIM step, its step options too
                two_steps = teacher_ddim.step(out, tt, two_steps, **teacher_ddim.step_options).prev_sample
            torch.testing.assert_close(one_step, two_steps, atol=1e-5, rtol=0)
            z = two_steps


def test_round_plan_and_its_errors():
    assert round_steps(4000, 32, 3) == [(32, 16), (16, 8), (8, 4)]
    assert round_steps(4000, 40, 3) == [(40, 20), (20, 10), (10, 5)]
    with pytest.raises(ValueError, match="does not divide the 4000"):
        round_steps(4000, 64, 2)
    with pytest.raises(ValueError, match="whole number"):
        round_steps(4000, 40, 4)


def test_the_loss_trains_a_class_conditional_student_on_labels_and_the_null_class():
    torch.manual_seed(0)
    teacher = make_ddpm_unet("tiny", class_conditional=True).eval()
    student = make_ddpm_unet("tiny", class_conditional=True)
    student.load_state_dict(teacher.state_dict())
    seen = []
    teacher.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["class_labels"].clone()), with_kwargs=True
    )
    images = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    labels = torch.arange(8) % 10
    loss = distillation_loss(
        student,
        teacher,
        images,
        torch.Generator().manual_seed(0),
        student_steps=2,
        alphas_cumprod=extended_alphas_cumprod(make_train_scheduler().config),
        teacher_prediction_type="epsilon",
        teacher_clip_range=1.0,
        class_labels=labels,
        label_dropout=0.5,
        null_class=10,
    )
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])  # both teacher steps see the same labels
    assert (seen[0] == 10).any() and (seen[0] == labels).any()  # some dropped to the null class, some kept


# ---------------------------------------------------------------------------------------------------------------
# The script and the student folder
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_script_writes_a_student_folder_per_round(student_dir, teacher_dir):
    scheduler = json.loads((student_dir / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DDIMScheduler" and scheduler["prediction_type"] == "v_prediction"
    assert scheduler["timestep_spacing"] == "trailing" and scheduler["clip_sample"] is False
    assert scheduler["num_train_timesteps"] == 4000 and scheduler["beta_schedule"] == "squaredcos_cap_v2"
    metrics = json.loads((student_dir / "metrics.json").read_text())
    assert metrics["model"] == "ddpm" and metrics["complete"] and metrics["global_step"] == 6
    assert len(metrics["loss_curve"]) == 6 and all(v > 0 for v in metrics["loss_curve"])
    rounds = metrics["distillation"]["rounds"]
    assert [(r["teacher_steps"], r["student_steps"], r["updates"]) for r in rounds] == [(8, 4, 3), (4, 2, 3)]
    assert student_steps(student_dir) == 2 and student_steps(student_dir / "rounds" / "4steps") == 4
    assert student_steps(teacher_dir) is None
    assert metrics["sampler"] == {**metrics["sampler"], "name": "ddim", "steps": 2}
    config = json.loads((student_dir / "training_config.json").read_text())
    assert config["max_train_steps"] == 3 and config["total_train_steps"] == 6
    assert (student_dir / "figures" / "samples.png").is_file()
    # The student moved away from its teacher, and round 2 started from round 1's student.
    teacher, student = _weights(teacher_dir / "unet"), _weights(student_dir / "unet")
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher)
    assert _weights(student_dir / "rounds" / "2steps" / "unet").keys() == student.keys()


@pytest.mark.slow
def test_the_student_loads_and_samples_at_its_step_count(student_dir):
    pipe = load(student_dir)
    assert isinstance(pipe, DDPMPipeline) and type(pipe.scheduler).__name__ == "DDIMScheduler"
    unet, scheduler = load_ddpm(student_dir)
    steps = student_steps(student_dir)
    calls = []
    images = sample_images(
        student_dir,
        sampler="ddim",
        num_inference_steps=steps,
        num_images=3,
        generator=torch.Generator().manual_seed(7),
        callback=lambda i, n, *_: calls.append(n),
    )
    again = sample_images(unet, scheduler, "ddim", steps, 3, generator=torch.Generator().manual_seed(7))
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, again) and calls == [steps] * steps  # its own step count, deterministic
    other = sample_images(unet, scheduler, "ddim", steps, 3, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(images, other)


@pytest.mark.slow
def test_resume_is_exact_at_and_within_a_round_boundary(student_dir, teacher_dir, tmp_path, run_script):
    """Resumed from checkpoint-3 (the last update of round 1: round 2's teacher is made on resume) and from
    checkpoint-4 (mid round 2: its teacher is reloaded from rounds/4steps): bit-identical students and losses.
    The resumed runs train in this process, the whole one in its own."""
    for step in (3, 4):
        out = tmp_path / f"from-{step}"
        (out / "checkpoints").mkdir(parents=True)
        shutil.copytree(student_dir / "checkpoints" / f"checkpoint-{step}", out / "checkpoints" / f"checkpoint-{step}")
        if step == 4:
            shutil.copytree(student_dir / "rounds" / "4steps", out / "rounds" / "4steps")
        run_script(str(SCRIPT.relative_to(REPO_ROOT)), "--teacher_model_name_or_path", str(teacher_dir), *TINY,
                   "--output_dir", str(out), "--resume_from_checkpoint", "latest")
        for sub in ("unet", "unet_non_ema", "rounds/4steps/unet"):
            a, b = _weights(student_dir / sub), _weights(out / sub)
            assert all(torch.equal(a[k], b[k]) for k in a), f"{sub} differs after resuming from checkpoint-{step}"
        whole, resumed = (json.loads((d / "metrics.json").read_text()) for d in (student_dir, out))
        assert whole["loss_curve"] == resumed["loss_curve"]


def test_a_step_plan_that_does_not_fit_is_one_line(teacher_dir, tmp_path, load_script):
    """64 steps do not divide T = 4000: one line, before anything is written (no accelerator, no data)."""
    script = load_script("training/distill_ddpm.py")
    args = script.parse_args(["--teacher_model_name_or_path", str(teacher_dir), "--start_steps", "64",
                              "--output_dir", str(tmp_path / "x"), "--logger", "none"])  # fmt: skip
    with pytest.raises(SystemExit, match=r"^error: teacher .*start_steps=64 does not divide") as raised:
        DistillTrainer.main(args)
    assert "\n" not in str(raised.value) and not (tmp_path / "x").exists()
    missing = script.parse_args(["--teacher_model_name_or_path", str(tmp_path / "none"), "--logger", "none"])
    with pytest.raises(SystemExit, match=r"^error: teacher "):
        DistillTrainer.main(missing)


# ---------------------------------------------------------------------------------------------------------------
# benchmarks/ddpm_sampling_speed.py --frontier
# ---------------------------------------------------------------------------------------------------------------
def _cache_fids(run_dir: Path, fids: dict[tuple[str, int], float]) -> None:
    """A test evaluation.json: these FIDs (N=1,000, fp32) for the folder's current weights."""
    points = {}
    for (sampler, steps), value in fids.items():
        point = Point(sampler, steps, 1000)
        points[point.key] = {
            **asdict(point),
            "weights": weights_digest(run_dir),
            "reference": "mnist-test",
            "fid": {"fid": value, "n_gen": 1000, "reference": "mnist-test"},
            "classifier": {},
            "seconds_per_16": 0.1,
        }
    (run_dir / "evaluation.json").write_text(
        json.dumps({"schema_version": 2, "kind": "ddpm", "settings": {}, "held_out": None, "points": points})
    )


@pytest.mark.slow
def test_frontier_marks_the_paths_that_meet_the_goal(student_dir, teacher_dir, tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    shutil.copytree(teacher_dir, teacher)
    for sub in ("unet", "scheduler", "model_index.json", "metrics.json"):
        (shutil.copytree if (student_dir / sub).is_dir() else shutil.copyfile)(student_dir / sub, student / sub)
    _cache_fids(teacher, {("ddpm", 2): 40.0, ("ddim", 1): 50.0})
    _cache_fids(student, {("ddim", 2): 43.0})
    out = _run(
        [
            BENCHMARK,
            "--frontier",
            "--model",
            teacher,
            "--student",
            student,
            "--samplers",
            "ddpm",
            "ddim",
            "--steps",
            "1",
            "2",
            "--precision",
            "fp32",
            "--num_images",
            "2",
            "--budget",
            "60",
        ]
    ).stdout
    rows = {
        tuple(c.strip() for c in line.strip("|").split("|")[:4]): line
        for line in out.splitlines()
        if line.startswith("| ") and "fp32" in line
    }
    assert len(rows) == 5 and "1 thread(s)" in out and "best FID 40.00" in out
    assert (
        "| 43.00 |" in rows[("student student", "ddim", "2", "fp32")]
        and "**✓**" in rows[("student student", "ddim", "2", "fp32")]
    )
    assert "**✓**" in rows[("model", "ddpm", "2", "fp32")]
    assert "| 50.00 |" in rows[("model", "ddim", "1", "fp32")] and "**✓**" not in rows[("model", "ddim", "1", "fp32")]
    for key in (("model", "ddpm", "1", "fp32"), ("model", "ddim", "2", "fp32")):  # no cached FID: never invented
        assert "| — |" in rows[key] and "**✓**" not in rows[key]
