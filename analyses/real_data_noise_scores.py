"""Label-free noise scores on real data (issue 29): which score, read from the one memorising
run, finds the wrong labels best? The runs are those of `analyses/real_data_cleanlab.py`
(trained here when missing, reused when there).

    OMP_NUM_THREADS=1 python analyses/real_data_noise_scores.py [--data digits mnist5k]
        [--rates 0.2 0.4 0.6 0.8] [--out runs/real-data-cleanlab]

Each candidate reads the observed training labels, the training inputs and the run's
checkpoints, never a true label; the true noise mask only scores its AUROC afterwards.
- subspace: the class-subspace label doubt of the first hidden layer (`core.class_structure`);
- trajectory (chosen): 1 − the mean probability of the observed label over the checkpoints up to
  the feature edit's label-free choice (`feature_edit.chosen_checkpoint`);
- trajectory (all): the same over every checkpoint and the final model;
- −AUM: minus Pleiss et al.'s (2020) area under the margin, the observed label's logit minus the
  largest other, averaged over every checkpoint and the final model;
- votes: 1 − the share of the observed label among the 10 nearest training examples' labels;
- and the sums named in the columns.
The rule was chosen by one criterion fixed before any AUROC was computed: the best mean AUROC
over the eight settings (digits-40 and mnist5k-40 at 20/40/60/80% symmetric noise, seed 0);
within 0.002 of the best mean, the candidate that reads the least. Measured after the choice
(the last row but one, not a candidate): the chosen sum with its trajectory read up to the
checkpoint that agrees most with the neighbour vote's class, the feature edit's possible next
checkpoint rule. Writes `<out>/noise-scores.md`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

import interp
from interp.analysis.feature_edit import chosen_checkpoint, neighbour_votes, trajectory_probabilities
from interp.analysis.noise_scores import auroc, noise_score, observed_doubt
from interp.families.base import family_of
from interp.training.rundir import load_run, trajectory_steps
from real_data_cleanlab import PRESET, trained


def area_under_margin(run) -> torch.Tensor:
    """Mean over every checkpoint and the final model of the observed label's logit minus the
    largest other logit, on the training examples (Pleiss et al. 2020)."""
    ds = run.dataset
    inputs, observed = ds.inputs[ds.train_mask], ds.labels[ds.train_mask]
    family = family_of(run.model)
    total = torch.zeros(len(observed), dtype=torch.float64)
    models = [load_run(run.path, s).model for s in trajectory_steps(run.path) if s < run.step] + [run.model]
    for model in models:
        with torch.no_grad():
            logits = family.forward(model, inputs).double()
        own = logits.gather(1, observed[:, None]).squeeze(1)
        total += own - logits.scatter(1, observed[:, None], float("-inf")).amax(1)
    return total / len(models)


def vote_checkpoint(run, votes: torch.Tensor) -> int:
    """The checkpoint whose training predictions agree most with the neighbour vote's class: the
    choice measured here after the score was chosen (not a candidate), which the feature edit has
    since adopted (`feature_edit.chosen_checkpoint`), so the score reads it too."""
    return chosen_checkpoint(run, votes)[0]


def candidates(run, product) -> dict[str, torch.Tensor]:
    """Every candidate's score on the run's training examples; the last is the product's
    (`product`: `interp.analysis.noise_scores.noise_score(run)`), whose parts are three of the others."""
    ds = run.dataset
    observed = ds.labels[ds.train_mask]
    earlier = [s for s in trajectory_steps(run.path) if s < run.step]
    every = trajectory_probabilities(run, earlier) * len(earlier)
    with torch.no_grad():
        every += family_of(run.model).forward(run.model, ds.inputs[ds.train_mask]).double().softmax(-1)
    every = observed_doubt(every / (len(earlier) + 1), observed)
    chosen, votes = product.trajectory, product.votes
    return {"subspace": product.subspace, "trajectory (chosen)": chosen, "trajectory (all)": every,
            "−AUM": -area_under_margin(run), "votes": votes, "trajectory (chosen) + votes": chosen + votes,
            "trajectory (all) + votes": every + votes, "subspace + trajectory (chosen) + votes": product.score}


def sensitivity(run, product) -> tuple[int, dict[str, torch.Tensor]]:
    """(the neighbour vote's checkpoint, the product's sum with its trajectory part read up to
    that checkpoint instead of the feature edit's): how the score would move if that choice
    changed. Measured after the choice, not a candidate."""
    ds = run.dataset
    inputs, observed = ds.inputs[ds.train_mask], ds.labels[ds.train_mask]
    step = vote_checkpoint(run, neighbour_votes(inputs, observed, ds.p))
    steps = [s for s in trajectory_steps(run.path) if s <= step]
    trajectory = observed_doubt(trajectory_probabilities(run, steps), observed)
    return step, {"after the choice: subspace + trajectory (vote checkpoint) + votes":
                  product.subspace + trajectory + product.votes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", nargs="+", default=list(PRESET), choices=list(PRESET))
    parser.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8])
    parser.add_argument("--out", default="runs/real-data-cleanlab")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    table: dict[str, list[float]] = {}
    settings, steps = [], []
    for data in args.data:
        base = interp.get_preset(PRESET[data]).spec
        for rate in args.rates:
            run = trained(replace(base, noise=replace(base.noise, rate=rate)), out / f"{data}-{rate:g}")
            noisy = run.dataset.noisy_mask[run.dataset.train_mask]
            settings.append(f"{data} {rate:.0%}")
            product = noise_score(run)
            vote_step, moved = sensitivity(run, product)
            steps.append(f"{product.steps[-1]} / {vote_step}")
            for name, score in (candidates(run, product) | moved).items():
                table.setdefault(name, []).append(auroc(score, noisy))
            print(settings[-1], steps[-1], {k: round(v[-1], 4) for k, v in table.items()}, flush=True)
    lines = ["| score | " + " | ".join(settings) + " | mean |", "|---" * (len(settings) + 2) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{a:.3f}" for a in aurocs) + f" | {sum(aurocs) / len(aurocs):.4f} |"
              for name, aurocs in table.items()]
    lines.append("| last checkpoint read: the feature edit's choice / the vote's | " + " | ".join(steps) + " | |")
    print("\n".join(lines))
    (out / "noise-scores.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'noise-scores.md'}")


if __name__ == "__main__":
    main()
