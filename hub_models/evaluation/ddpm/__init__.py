"""FID of a trained DDPM (pixel or latent) and the sampler sweep (FID vs CPU time), resumable, cached in the run.

Generated digits are written in chunks (`<run>/evaluation/<point>/chunk-*.npy`, uint8) as they are made, so a
killed evaluation resumes where it stopped; every finished point lands in `<run>/evaluation.json`, keyed by the
weights' digest, so more training invalidates it and nothing else does.

One module per concern: `point` (how a point samples), `chunks` (its digits and features on disk), `scoring`
(FID, timing, the cache), `protocol` (docs/lab/PROTOCOL.md's sweep and choices), `summary` (what a run's evaluation
says), `plots`, `diagnostics` (ε-error by timestep), `run_data` (the reference and classifier of a run on other
data than MNIST: its own held-out images, a classifier of that data) and `runner` (what `scripts/evaluate_ddpm.py`
runs).
"""

from hub_models.evaluation.ddpm.chunks import (
    SAMPLED_ON_FILE,
    chunk_features,
    chunk_folder,
    generate,
    sampled_on,
    sampling_device,
    timed_at_fp32_speed,
)
from hub_models.evaluation.ddpm.diagnostics import epsilon_error_by_timestep
from hub_models.evaluation.ddpm.plots import guidance_plot, sweep_plot
from hub_models.evaluation.ddpm.point import (
    CHECKPOINT_SECONDS,
    PRECISIONS,
    RESUMABLE_SAMPLERS,
    Point,
    is_conditional_run,
    point_sampler,
    requested_labels,
    run_num_classes,
    weights_digest,
)
from hub_models.evaluation.ddpm.protocol import (
    PROTOCOL_GUIDANCE,
    PROTOCOL_RERUNS,
    PROTOCOL_SWEEP,
    PROTOCOL_SWEEP_PRECISION,
    PROTOCOL_TIE,
    SWEEP_STEPS,
    guidance_group,
    missing_sweep_points,
    protocol_reruns,
    select_guidance,
    select_point,
    sweep_points,
    sweep_results,
)
from hub_models.evaluation.ddpm.run_data import (
    RUN_REFERENCE,
    references,
    run_classifier,
    run_data,
    run_dataset,
    scoring_reference,
)
from hub_models.evaluation.ddpm.scoring import (
    current_points,
    evaluate_point,
    load_evaluation,
    retime_points,
    seconds_per_16,
    update_evaluation,
)
from hub_models.evaluation.ddpm.summary import describe_point, evaluation_summary
from hub_models.evaluation.schema import EVALUATION_FILE

__all__ = [
    "CHECKPOINT_SECONDS",
    "EVALUATION_FILE",
    "PRECISIONS",
    "PROTOCOL_GUIDANCE",
    "PROTOCOL_RERUNS",
    "PROTOCOL_SWEEP",
    "PROTOCOL_SWEEP_PRECISION",
    "PROTOCOL_TIE",
    "RESUMABLE_SAMPLERS",
    "RUN_REFERENCE",
    "SAMPLED_ON_FILE",
    "SWEEP_STEPS",
    "Point",
    "chunk_features",
    "chunk_folder",
    "current_points",
    "describe_point",
    "epsilon_error_by_timestep",
    "evaluate_point",
    "evaluation_summary",
    "generate",
    "guidance_group",
    "guidance_plot",
    "is_conditional_run",
    "load_evaluation",
    "missing_sweep_points",
    "point_sampler",
    "protocol_reruns",
    "references",
    "requested_labels",
    "retime_points",
    "run_classifier",
    "run_data",
    "run_dataset",
    "run_num_classes",
    "sampled_on",
    "sampling_device",
    "scoring_reference",
    "seconds_per_16",
    "select_guidance",
    "select_point",
    "sweep_plot",
    "sweep_points",
    "sweep_results",
    "timed_at_fp32_speed",
    "update_evaluation",
    "weights_digest",
]
