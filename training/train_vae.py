#!/usr/bin/env python
"""Train one β-VAE of the study on MNIST.

    accelerate launch training/train_vae.py                      # Conv VAE, z=2, β=1: the study's recipe
    accelerate launch training/train_vae.py --arch dense --latent_dim 4 --beta 20
    python training/train_vae.py --max_train_steps 20 --output_dir /tmp/vae   # a quick smoke run

Loss per image = BCE (summed over the 784 pixels) + β·KLD. Writes the model (`save_pretrained`), metrics.json,
training_config.json, figures/*.png and tensorboard logs into --output_dir; see training/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python training/train_vae.py` from a checkout

from hub_models import VAE_CLASSES, VAELoss
from hub_models.data import MNISTUnavailableError, load_splits, uint8_to_unit
from hub_models.evaluation import vae_metrics
from hub_models.figures import latent_scatter, manifold_grid, pca_2d, reconstruction_grid, save_png, to_pil
from hub_models.training import (
    CheckpointedGenerator,
    Stopwatch,
    check_finite,
    end_training,
    make_accelerator,
    non_negative_float,
    positive_int,
    resume_from,
    save_checkpoint,
    save_pretrained_atomic,
    updates_per_epoch,
    write_json_atomic,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(VAE_CLASSES), default="conv", help="Conv VAE or dense VAE.")
    parser.add_argument("--latent_dim", type=positive_int, default=2, help="Size of the latent z.")
    parser.add_argument("--beta", type=non_negative_float, default=1.0, help="Weight β of the KLD term.")
    parser.add_argument("--beta_schedule", choices=["constant", "linear-warmup"], default="constant",
                        help="constant β, or β-annealing: β grows linearly from 0 over --beta_warmup_epochs.")
    parser.add_argument("--beta_warmup_epochs", type=non_negative_float, default=10.0,
                        help="Epochs of the linear β warm-up (with --beta_schedule linear-warmup).")
    parser.add_argument("--epochs", type=positive_int, default=20, help="Training epochs.")
    parser.add_argument("--batch_size", type=positive_int, default=64, help="Batch size per process.")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of initialisation, shuffling and noise.")
    parser.add_argument("--split", choices=["study", "official"], default="study",
                        help="study: 80/20 of the 60k training digits (48k/12k); official: 60k train / 10k test.")
    parser.add_argument("--limit_train_samples", type=positive_int, default=None,
                        help="Use only the first N digits of each split (quick runs, tests).")
    parser.add_argument("--output_dir", default="outputs/vae-conv-z2-beta1", help="Where the run is written.")
    parser.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None,
                        help="Defaults to `accelerate launch`'s setting (none when run with python).")
    parser.add_argument("--gradient_accumulation_steps", type=positive_int, default=1,
                        help="Batches per optimizer update.")
    parser.add_argument("--checkpointing_steps", type=positive_int, default=500,
                        help="Save an accelerate checkpoint every N updates (and at the end).")
    parser.add_argument("--checkpoints_total_limit", type=positive_int, default=2,
                        help="Keep the newest K checkpoints.")
    parser.add_argument("--resume_from_checkpoint", default=None,
                        help="'latest' or a checkpoint folder: continue exactly where that run stopped.")
    parser.add_argument("--max_train_steps", type=positive_int, default=None,
                        help="Stop after this many updates (overrides --epochs; for tests).")
    parser.add_argument("--num_figure_samples", type=positive_int, default=64, help="Prior samples in samples.png.")
    parser.add_argument("--push_to_hub", action="store_true", help="Push the finished run to the Hub.")
    parser.add_argument("--hub_model_id", default=None, help="Repo id for --push_to_hub (user/name).")
    parser.add_argument("--hub_private", action="store_true", help="Create the Hub repo as private.")
    parser.add_argument("--write_rank_fingerprints", action="store_true",
                        help="Each process writes a hash of its final weights (checks data-parallel sync).")
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    return args


def beta_at(args: argparse.Namespace, step: int, steps_per_epoch: int) -> float:
    if args.beta_schedule == "constant" or args.beta_warmup_epochs == 0:
        return args.beta
    return args.beta * min(1.0, step / (args.beta_warmup_epochs * steps_per_epoch))


def training_step(accelerator, model, optimizer, images: torch.Tensor, beta: float,
                  generator: torch.Generator, step: int) -> VAELoss:
    """One batch: uint8 images → [0, 1] on the device → BCE + β·KLD → backward → (accumulated) update."""
    x = uint8_to_unit(images)
    with accelerator.accumulate(model):
        terms = accelerator.unwrap_model(model).loss(x, beta=beta, output=model(x, generator=generator))
        check_finite(terms.loss, step)
        accelerator.backward(terms.loss)
        optimizer.step()
        optimizer.zero_grad()
    return terms


def test_metrics(model, images: torch.Tensor, beta: float) -> dict[str, float]:
    """Held-out BCE, KLD, ELBO (fixed-seed posterior noise, so epochs compare on equal terms) and the β-loss."""
    metrics = vae_metrics(model, images, seed=0)
    return {"bce": metrics["bce"], "kld": metrics["kld"], "elbo": metrics["elbo"],
            "loss": metrics["bce"] + beta * metrics["kld"]}


def weights_fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def write_figures(model, held_out, figures_dir: Path, args: argparse.Namespace) -> None:
    model.eval()
    originals = held_out.as_float()[:32].to(model.device)
    save_png(reconstruction_grid(originals, model.reconstruct(originals)), figures_dir / "reconstructions.png")
    generator = torch.Generator().manual_seed(args.seed)
    save_png(to_pil(model.sample(args.num_figure_samples, generator=generator), scale=3), figures_dir / "samples.png")
    subset = held_out.subset(5000)
    means = torch.cat([model.encode(x.to(model.device))[0].cpu()
                       for x in uint8_to_unit(subset.images).split(1000)]).numpy()
    labels = subset.labels.numpy()
    name = f"{args.arch} VAE, z={args.latent_dim}, β={args.beta:g}"
    if args.latent_dim == 2:
        save_png(latent_scatter(means, labels, title=f"Latent means of test digits — {name}"),
                 figures_dir / "latent_scatter.png")
        save_png(manifold_grid(lambda z: model.decode(z.to(model.device))), figures_dir / "manifold.png")
    else:
        points, ratio = pca_2d(means)
        save_png(latent_scatter(points, labels, title=f"PCA of latent means — {name}",
                                xlabel=f"PC1 ({ratio[0]:.0%})", ylabel=f"PC2 ({ratio[1]:.0%})"),
                 figures_dir / "latent_pca.png")


def main(args: argparse.Namespace) -> None:
    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(output_dir, mixed_precision=args.mixed_precision,
                                   gradient_accumulation_steps=args.gradient_accumulation_steps)
    set_seed(args.seed)

    try:
        train, held_out = load_splits(args.split, limit=args.limit_train_samples)
    except MNISTUnavailableError as err:
        raise SystemExit(f"error: {err}") from None

    model = VAE_CLASSES[args.arch](latent_dim=args.latent_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    # uint8 tensors stay in memory; batches are converted to floats on the device, never per item through PIL.
    loader = DataLoader(TensorDataset(train.images), batch_size=args.batch_size, shuffle=True, drop_last=False)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    noise = CheckpointedGenerator(args.seed + accelerator.process_index, accelerator.device)
    accelerator.register_for_checkpointing(noise)

    steps_per_epoch = updates_per_epoch(len(loader), args.gradient_accumulation_steps)
    max_steps = args.max_train_steps or args.epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)

    start = resume_from(accelerator, output_dir, args.resume_from_checkpoint, steps_per_epoch,
                        args.gradient_accumulation_steps)
    history_path = output_dir / "history.json"
    history = _read_history(history_path, start.first_epoch) if start.global_step else []

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output_dir / "training_config.json", vars(args))
        accelerator.init_trackers("train_vae", config={k: str(v) if v is None else v for k, v in vars(args).items()})

    unwrapped = accelerator.unwrap_model(model)
    accelerator.print(f"{args.arch} VAE, z={args.latent_dim}: {unwrapped.num_parameters():,} parameters; "
                      f"{len(train):,} train / {len(held_out):,} held-out digits; {max_steps} updates; "
                      f"{accelerator.num_processes} process(es) on {accelerator.device}")
    progress = tqdm(total=max_steps, initial=start.global_step, desc="train_vae",
                    disable=not accelerator.is_local_main_process)
    global_step, clock = start.global_step, Stopwatch()
    held_out_images = held_out.as_float()
    for epoch in range(start.first_epoch, num_epochs):
        model.train()
        loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, start.batches_to_skip) \
            if epoch == start.first_epoch and start.batches_to_skip else loader
        sums, seen = torch.zeros(2), 0
        with clock:
            for (images,) in batches:
                beta = beta_at(args, global_step, steps_per_epoch)
                terms = training_step(accelerator, model, optimizer, images, beta, noise.generator, global_step)
                sums += torch.stack([terms.bce.detach(), terms.kld.detach()]).float().cpu() * len(images)
                seen += len(images)
                if accelerator.sync_gradients:
                    global_step += 1
                    progress.update(1)
                    progress.set_postfix(bce=f"{terms.bce.item():.1f}", kld=f"{terms.kld.item():.2f}", beta=beta)
                    accelerator.log({"train/loss": terms.loss.item(), "train/beta": beta}, step=global_step)
                    if global_step % args.checkpointing_steps == 0:
                        save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
                    if global_step >= max_steps:
                        break
        # Partial epochs (resume, --max_train_steps) average what they saw; test metrics use a fixed seed.
        train_bce, train_kld = (sums / max(seen, 1)).tolist()
        unwrapped.eval()
        test = test_metrics(unwrapped, held_out_images, args.beta)
        record = {"epoch": epoch + 1, "step": global_step, "beta": beta,
                  "train": {"bce": train_bce, "kld": train_kld, "elbo": -(train_bce + train_kld)}, "test": test}
        history.append(record)
        accelerator.log({"train/bce": train_bce, "train/kld": train_kld, "train/elbo": -(train_bce + train_kld),
                         **{f"test/{k}": v for k, v in test.items()}}, step=global_step)
        accelerator.print(f"epoch {epoch + 1}: train BCE {train_bce:.2f} KLD {train_kld:.2f} | "
                          f"test BCE {test['bce']:.2f} KLD {test['kld']:.2f} ELBO {test['elbo']:.2f}")
        if accelerator.is_main_process:
            write_json_atomic(history_path, history)
        if global_step >= max_steps:
            break
    progress.close()
    if not list((output_dir / "checkpoints").glob(f"checkpoint-{global_step}")):
        save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)

    if args.write_rank_fingerprints:
        (output_dir / f"rank{accelerator.process_index}.sha256").write_text(weights_fingerprint(unwrapped))
    if accelerator.is_main_process:
        save_pretrained_atomic(unwrapped, output_dir)
        write_figures(unwrapped, held_out, output_dir / "figures", args)
        last = history[-1]
        write_json_atomic(output_dir / "metrics.json", {
            "model": "vae", "arch": args.arch, "latent_dim": args.latent_dim, "beta": args.beta,
            "beta_schedule": args.beta_schedule, "parameters": unwrapped.num_parameters(),
            "test": last["test"], "train": last["train"], "history": history,
            "train_seconds": clock.total, "seconds_per_epoch": clock.total * steps_per_epoch / max(
                global_step - start.global_step, 1),
            "seed": args.seed, "split": args.split, "epochs": num_epochs, "global_step": global_step,
            "num_processes": accelerator.num_processes, "train_samples": len(train), "test_samples": len(held_out),
        })
        accelerator.print(f"Saved the model, metrics.json and figures to {output_dir}")
        if args.push_to_hub:
            _push(output_dir, args)
    end_training(accelerator)


def _read_history(path: Path, first_epoch: int) -> list[dict]:
    if not path.exists():
        return []
    return [r for r in json.loads(path.read_text()) if r["epoch"] <= first_epoch]


def _push(output_dir: Path, args: argparse.Namespace) -> None:
    """The run is safe on disk already: a failed upload is reported, never raised."""
    try:
        from hub_models.hub import push_run

        url = push_run(output_dir, args.hub_model_id, private=args.hub_private)
        print(f"Pushed to {url}")
    except Exception as err:
        print(f"warning: push to the Hub failed ({type(err).__name__}: {err}); retry with "
              f"`python training/push_to_hub.py --run_dir {output_dir} --repo_id {args.hub_model_id}`")


if __name__ == "__main__":
    try:
        main(parse_args())
    except FloatingPointError as err:  # diverged: the checkpoints on disk are the last good state
        raise SystemExit(f"error: {err}") from None
