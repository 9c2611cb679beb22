"""What `scripts/evaluate_ddpm.py` runs: its flags (an `argparse.Namespace`) in, the points evaluated, an exit status
out. Each mode is one function: the card check, re-timing, docs/lab/PROTOCOL.md's whole sequence, or the points the
flags name (the main FID, the raw weights, the sweep, the guidance table).

A run on other data than MNIST is scored against its own held-out images (the reference flags default to them) and
its class metrics need `--classifier_dir` (`hub_models.evaluation.ddpm.run_data`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub_models.diffusion.pipeline import is_ddpm_run
from hub_models.diffusion.sampling import DEFAULT_GUIDANCE_SCALE
from hub_models.evaluation.card_check import card_snippet_check
from hub_models.evaluation.ddpm.chunks import generate
from hub_models.evaluation.ddpm.plots import guidance_plot, sweep_plot
from hub_models.evaluation.ddpm.point import Point, is_conditional_run, run_num_classes
from hub_models.evaluation.ddpm.protocol import (
    PROTOCOL_GUIDANCE,
    PROTOCOL_SWEEP_PRECISION,
    PROTOCOL_TIE,
    guidance_group,
    missing_sweep_points,
    protocol_reruns,
    select_guidance,
    select_point,
    sweep_points,
    sweep_results,
)
from hub_models.evaluation.ddpm.run_data import check_reference, references, run_classifier, run_data, run_dataset
from hub_models.evaluation.ddpm.scoring import current_points, evaluate_point, retime_points
from hub_models.evaluation.ddpm.summary import describe_point
from hub_models.io import cpu_name

SWEEP_FIGURE = Path("figures") / "sampler_sweep.png"
GUIDANCE_FIGURE = Path("figures") / "guidance.png"


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def evaluate_run(args: argparse.Namespace) -> int:
    """Run `scripts/evaluate_ddpm.py`'s flags on `args.run_dir`; 0 when done, 1 when the card check fails, 2 when
    the flags do not fit the run."""
    run_dir = Path(args.run_dir)
    if not is_ddpm_run(run_dir):
        return _error(f"{run_dir} is not a DDPM run folder (no model_index.json + unet/); train one with "
                      "`accelerate launch training/train_ddpm.py`")
    conditional = is_conditional_run(run_dir)
    if not conditional and (args.guidance_scale is not None or args.guidance_sweep):
        return _error(f"{run_dir} is an unconditional model: --guidance_scale and --guidance_sweep need a "
                      "class-conditional one (`train_ddpm.py --class_conditional`)")
    try:
        args = with_run_data(run_dir, args)
    except ValueError as err:  # a reference or classifier that does not fit the run, data that cannot be rebuilt
        return _error(str(err))
    if args.check_card_snippet:
        return check_card(run_dir, args)
    w = (DEFAULT_GUIDANCE_SCALE if args.guidance_scale is None else args.guidance_scale) if conditional else None
    if args.retime:
        return retime(run_dir, args, w)
    if args.protocol:
        if conditional:
            return _error("--protocol is the unconditional model's sweep; a class-conditional model gets a "
                          "guidance table instead (--guidance_sweep)")
        return run_protocol(run_dir, args)
    return evaluate_points(run_dir, args, w)


def with_run_data(run_dir: Path, args: argparse.Namespace) -> argparse.Namespace:
    """The flags with the run's reference sets filled in (MNIST's study-test / mnist-test, or the run's own held-out
    images for a run on other data) and checked, and the classifier checked against the run; prints the one line
    that says when the class metrics are left out. ValueError when they do not fit the run."""
    selection, report = references(run_dir)
    args = argparse.Namespace(**{**vars(args), "reference": getattr(args, "reference", None) or report,
                                 "sweep_reference": getattr(args, "sweep_reference", None) or selection,
                                 "classifier_dir": getattr(args, "classifier_dir", None)})
    for reference in {args.reference, args.sweep_reference}:
        check_reference(run_dir, reference)
    dataset = run_dataset(run_dir)
    if dataset is None:
        if args.classifier_dir is not None:
            run_classifier(run_dir, args.classifier_dir, run_num_classes(run_dir))
        return args
    if args.classifier_dir is None:
        print(f"class metrics left out: {run_dir} was trained on {dataset['name']}, not MNIST, and no classifier of "
              "that data was given (train one with training/train_classifier.py on the same data flags and pass "
              "--classifier_dir); the MNIST digit classifier is never used for it")
    else:
        run_classifier(run_dir, args.classifier_dir, run_num_classes(run_dir))
    if not (args.generate_only or args.retime or args.check_card_snippet):  # these score no new FID
        train = run_data(run_dir)[0]
        wanted = max(_planned_sizes(args))
        if wanted > len(train):
            raise ValueError(f"the real-vs-real floor at N={wanted:,} needs as many real images, and {dataset['name']} "
                             f"has {len(train):,} train images: ask for at most {len(train):,} (--num_samples, "
                             "--sweep_samples, --guidance_samples, --no_ema_samples)")
    return args


def _planned_sizes(args: argparse.Namespace) -> list[int]:
    """Every N the flags score (the floor of each draws that many real images)."""
    sizes = [] if args.sweep_only else [args.num_samples]
    sizes += [args.no_ema_samples] if args.no_ema_samples else []
    sizes += [args.sweep_samples] if args.sweep or args.protocol else []
    sizes += [args.guidance_samples] if args.guidance_sweep else []
    return sizes or [0]


def check_card(run_dir: Path, args: argparse.Namespace) -> int:
    """docs/lab/PROTOCOL.md's card check; 1 if the snippet's FID is off."""
    try:
        check = card_snippet_check(run_dir, args.card_check_samples, batch_size=args.batch_size)
    except ValueError as err:  # no headline yet, or a card this check cannot run
        return _error(str(err))
    print(f"card snippet: FID {check['snippet_fid']:.2f} (N={check['num_samples']:,} vs {check['reference']}); "
          f"evaluator over seeds {check['seeds']}: {check['mean']:.2f} ± {check['sigma']:.2f} → "
          f"{'passes' if check['passes'] else 'FAILS'} (within {check['tolerance_sigmas']:g} σ)")
    return 0 if check["passes"] else 1


def retime(run_dir: Path, args: argparse.Namespace, w: float | None) -> int:
    """Re-measure every cached point's seconds here, then redraw the sweep these flags name."""
    print(f"re-timed {retime_points(run_dir)} points on {cpu_name()}")
    if done := sweep_results(run_dir, args.sweep_samples, w, seed=args.sweep_seed, reference=args.sweep_reference):
        print(f"sweep plot: {sweep_plot(done, run_dir / SWEEP_FIGURE)}")
    return 0


def planned_points(args: argparse.Namespace, w: float | None) -> tuple[list[Point], list[Point], list[Point]]:
    """(guidance table, sweep, report points) the flags ask for, in the order they are evaluated."""
    points = [] if args.sweep_only else [Point(args.sampler, args.steps, args.num_samples, True, args.seed,
                                               args.precision, guidance_scale=w)]
    if args.no_ema_samples:
        points.append(Point(args.sampler, args.steps, args.no_ema_samples, False, args.seed, args.precision,
                            guidance_scale=w))
    guidance = [Point(args.sampler, args.steps, args.guidance_samples, True, args.sweep_seed, args.precision,
                      guidance_scale=g) for g in args.guidance_sweep or []]
    sweep = sweep_points(args.sweep_samplers, args.sweep_steps, args.sweep_samples, args.sweep_seed,
                         args.precision, w) if args.sweep else []
    return guidance, sweep, points


def evaluate_points(run_dir: Path, args: argparse.Namespace, w: float | None) -> int:
    """The points the flags name: selection (guidance table, sweep) first, then the report's."""
    guidance, sweep, points = planned_points(args, w)
    if args.generate_only:
        for point in [*guidance, *sweep, *points]:
            generate(run_dir, point, batch_size=args.batch_size)
        return 0
    for point in [*guidance, *sweep, *points]:
        selecting = point in sweep or point in guidance
        evaluate_point(run_dir, point, reference=args.sweep_reference if selecting else args.reference,
                       batch_size=args.batch_size, classifier_dir=args.classifier_dir)
        if point in sweep:  # redraw as points land
            done = sweep_results(run_dir, args.sweep_samples, w, seed=args.sweep_seed,
                                 reference=args.sweep_reference)
            print(f"sweep plot: {sweep_plot(done, run_dir / SWEEP_FIGURE)}")
        if point in guidance and len(table := guidance_group(current_points(run_dir))) > 1:
            print(f"guidance plot: {guidance_plot(table, run_dir / GUIDANCE_FIGURE)}")
    if guidance:
        report_guidance(run_dir)
    return 0


def report_guidance(run_dir: Path) -> None:
    """The guidance table, one line per w, and the protocol's choice (or what it still lacks)."""
    table = guidance_group(current_points(run_dir))
    for point in table:
        print(f"w = {point['guidance_scale']:g}: {describe_point(point)}")
    if (chosen := select_guidance(table)) is not None:
        print(f"chosen (docs/lab/PROTOCOL.md: lowest FID, ties within {PROTOCOL_TIE:.0%} to class accuracy): "
              f"w = {chosen['guidance_scale']:g}; its headline: --guidance_scale {chosen['guidance_scale']:g}")
    else:
        print(f"no w chosen: the protocol's table needs w = {', '.join(f'{w:g}' for w in PROTOCOL_GUIDANCE)}")


def run_protocol(run_dir: Path, args: argparse.Namespace) -> int:
    """docs/lab/PROTOCOL.md in its order; every finished point is cached, so a rerun resumes."""
    n, seed, reference = args.sweep_samples, args.sweep_seed, args.sweep_reference

    def sweep() -> list[dict]:
        return sweep_results(run_dir, n, seed=seed, reference=reference)

    def measure(sampler: str, steps: int, precision: str) -> None:
        evaluate_point(run_dir, Point(sampler, steps, n, True, seed, precision), reference=reference,
                       batch_size=args.batch_size, classifier_dir=args.classifier_dir)
        print(f"sweep plot: {sweep_plot(sweep(), run_dir / SWEEP_FIGURE)}")

    if args.generate_only:  # the re-runs and the headline depend on the sweep's FIDs: they come after scoring
        for sampler, steps in missing_sweep_points(sweep()):
            generate(run_dir, Point(sampler, steps, n, True, seed, PROTOCOL_SWEEP_PRECISION),
                     batch_size=args.batch_size)
        return 0
    for sampler, steps in missing_sweep_points(sweep()):
        measure(sampler, steps, PROTOCOL_SWEEP_PRECISION)
    for sampler, steps in protocol_reruns(sweep()):
        measure(sampler, steps, "fp32")
    chosen = select_point(sweep())
    print(f"selected (docs/lab/PROTOCOL.md): {describe_point(chosen)}")
    _protocol_headline(run_dir, args, chosen)
    return 0


def _protocol_headline(run_dir: Path, args: argparse.Namespace, chosen: dict) -> None:
    """The raw-weights point (with --no_ema_samples) and the main FID of the selected sampler, steps, precision."""
    how, precision = (chosen["sampler"], chosen["steps"]), chosen.get("precision", "fp32")
    raw_dir = Path(args.raw_run_dir or run_dir)
    if args.no_ema_samples and (raw_dir / "unet_non_ema").is_dir():
        evaluate_point(raw_dir, Point(*how, args.no_ema_samples, False, args.sweep_seed, precision),
                       reference=args.sweep_reference, batch_size=args.batch_size, results_dir=run_dir,
                       classifier_dir=args.classifier_dir)
    elif args.no_ema_samples:
        print(f"raw-weights point skipped: {raw_dir} has no unet_non_ema/ (pass the run it came from as "
              "--raw_run_dir)")
    main = evaluate_point(run_dir, Point(*how, args.num_samples, True, args.seed, precision),
                          reference=args.reference, batch_size=args.batch_size, classifier_dir=args.classifier_dir)
    print(f"main: {describe_point(main)}")


__all__ = ["evaluate_run", "planned_points", "run_protocol", "with_run_data"]
