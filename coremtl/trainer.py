"""The one trainer of the toolkit, for the synthetic and the vision experiments alike.

A run is a loop over epochs of optimisation steps, built from named parts:

- :mod:`coremtl.step`: one step on one batch (losses, terms, balancer, clipping, AdamW);
- :mod:`coremtl.terms`: the loss terms beside the task losses and the epoch each starts at;
- :mod:`coremtl.sampler`: the deterministic sharded order of the training data;
- :mod:`coremtl.optimization`: AdamW parameter groups and the warm-up / cosine schedule;
- :mod:`coremtl.run_log`: the log files, the epoch means and the best-epoch selection;
- :mod:`coremtl.trainer_config`: the settings (:class:`TrainerConfig`).

Each epoch ends with ``validate(model)`` (the split that selects ``best.pt``) and ``test(model)``
(reported, never used for selection), both optional, the balancer's ``end_epoch``, and an epoch
record in ``epochs.jsonl`` and :attr:`Trainer.history`: the mean of each logged training value
over the steps that logged it, those step counts, and the validation and test metrics.

Reproducibility: the run is seeded (python, numpy, torch); a checkpoint stores model, optimiser,
scheduler, balancer (with its learnable parameters), every RNG state, the CFA generator, the step,
the epoch, the position in the epoch, the running epoch sums and the history, so a run resumed
from any step continues with the same batches and ends bit-for-bit where an uninterrupted run
ends (on the same device). A data-parallel checkpoint also holds, under ``ranks``, what differs
between processes: each rank's RNG states, CFA generator, balancer state (per rank with
``distributed_balancing='local'``) and buffers (batch-norm statistics); resumed with as many
processes, each rank restores its own, so the resumed run is exact too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from coremtl import distributed
from coremtl.balancers.base import Balancer
from coremtl.checkpoint import (
    load_checkpoint,
    load_module_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from coremtl.rank_state import load_rank_state, rank_state
from coremtl.run_folder import (
    MANIFEST,
    TRAINER_FLAGS,
    FolderFlags,
    check_resumable,
    claim_fresh_folder,
    require_checkpoint,
    write_manifest,
)
from coremtl.run_log import EPOCHS, METRICS, EpochMeans, ModelSelection, RunLog
from coremtl.sampler import epoch_batches, epoch_order, iterate_batches, num_samples
from coremtl.step import NonFiniteError, Probe, TaskLoss, TaskLossVector, TrainingStep
from coremtl.terms import ScheduledTerms, Sources, TermSource
from coremtl.trainer_config import LR_SCHEDULES, OptimizationConfig, TrainerConfig
from scm.seeds import derive_seed
from scm.validation import InvalidParameterError, check_output_path

__all__ = [
    "BEST_CHECKPOINT",
    "LAST_CHECKPOINT",
    "LR_SCHEDULES",
    "Evaluate",
    "NonFiniteError",
    "OptimizationConfig",
    "Probe",
    "ScheduledTerms",
    "TaskLoss",
    "TaskLossVector",
    "TermSource",
    "Trainer",
    "TrainerConfig",
    "epoch_order",
]

Evaluate = Callable[[nn.Module], Mapping[str, float]]

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


class Trainer(TrainingStep):
    """Train ``model`` on ``task_losses`` combined by ``balancer`` (plus ``objective`` terms).

    ``task_losses[t](prediction_t, batch)`` returns the scalar loss of task ``t``; ``objective`` is
    one term source or a list of them, each possibly wrapped in :class:`ScheduledTerms` to start
    at a later epoch; ``probes`` are callbacks ``probe(model, batch, forward, step)`` returning a
    number or a dict of numbers, called every ``config.probe_every`` steps before the backward
    pass; ``validate(model)`` returns the validation metrics that select ``best.pt`` and
    ``test(model)`` the reported ones, at the end of each epoch (the model in eval mode, on the
    main process only). ``checkpoint_metadata`` (strings, numbers) is stored in every checkpoint.
    ``task_loss_vector(predictions, batch)``, when given, returns the ``(K,)`` losses of every task
    in ``task_losses`` order from one call (e.g. one binary cross-entropy with
    ``reduction='none'`` over the stacked logits of :class:`coremtl.representation.LinearHeads`,
    averaged over the batch), so the cost of the losses does not grow with K; ``task_losses``
    then only names the tasks.
    Results go to ``output_dir``: ``config.json``, ``metrics.jsonl``, ``metrics.csv``,
    ``epochs.jsonl`` (:class:`coremtl.run_log.RunLog`) and the run manifest
    (:mod:`coremtl.run_folder`); checkpoints ``last.pt`` and ``best.pt`` go to ``checkpoint_dir``
    (default ``output_dir``). ``folder_flags`` are how the caller's messages name resuming and
    overwriting (the ``fit`` arguments by default; the command line sets its flags).
    """

    folder_flags: FolderFlags = TRAINER_FLAGS

    def __init__(
        self,
        model: nn.Module,
        task_losses: Mapping[str, TaskLoss],
        balancer: Balancer,
        config: TrainerConfig,
        output_dir: str | Path | None,
        objective: Sources = None,
        probes: Mapping[str, Probe] | None = None,
        validate: Evaluate | None = None,
        test: Evaluate | None = None,
        run_info: Mapping[str, Any] | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_metadata: Mapping[str, Any] | None = None,
        task_loss_vector: TaskLossVector | None = None,
    ):
        super().__init__(model, task_losses, balancer, config, objective, probes, task_loss_vector)
        if config.selection_metric is not None and validate is None:
            raise InvalidParameterError("validate: a selection_metric needs a validation function")
        if output_dir is not None and distributed.is_main_process():
            check_output_path(output_dir, "output_dir", folder=True)
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.output_dir
        self.validate = validate
        self.test = test
        self.run_info = dict(run_info or {})
        self.checkpoint_metadata = dict(checkpoint_metadata or {})
        self.batch_in_epoch = 0
        self.selection = ModelSelection(config.selection_metric, config.selection_mode)
        self.history: list[dict[str, Any]] = []
        self.epoch_means = EpochMeans()

    @property
    def best(self) -> dict[str, Any] | None:
        """The validation entry of the selected epoch (``None`` before one is selected)."""
        return self.selection.best

    @property
    def is_main(self) -> bool:
        return distributed.is_main_process()

    @property
    def writes_files(self) -> bool:
        """Whether this process writes outputs (the main process of a run with an output_dir)."""
        return self.output_dir is not None and self.is_main

    @property
    def log(self) -> RunLog:
        return RunLog(self.output_dir if self.writes_files else None)

    def epoch_batches(self, data, epoch: int) -> list[Tensor]:
        """The index batches this process visits in ``epoch`` (:func:`coremtl.sampler.epoch_batches`)."""
        c = self.config
        return epoch_batches(
            data, c.seed, epoch, c.batch_size, c.drop_last, c.max_batches_per_epoch
        )

    def iterate(self, data, batches: Sequence[Tensor]):
        """The batches of ``data`` in the given index order, from the current position."""
        c = self.config
        return iterate_batches(
            data, batches, c.seed, self.epoch, self.batch_in_epoch, c.num_workers
        )

    def _evaluate(self, function: Evaluate | None) -> dict[str, float]:
        if function is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            return {key: float(value) for key, value in function(self.model).items()}
        finally:
            self.model.train(was_training)

    def _validate_and_select(self, record: dict[str, Any]) -> None:
        metrics = self._evaluate(self.validate)
        test = self._evaluate(self.test)
        if metrics:
            val_row = {f"val/{k}": v for k, v in metrics.items()}
            self.log.append(METRICS, {"step": self.step, "epoch": self.epoch, **val_row})
        record["val"] = metrics
        record["test"] = test
        if self.selection.update(metrics, test, self.step, self.epoch) and self.writes_files:
            best = {"model": self.model.state_dict(), "best": self.best}
            save_checkpoint(
                {**best, **self.checkpoint_metadata}, self.checkpoint_dir / BEST_CHECKPOINT
            )

    def _end_epoch(self) -> None:
        record: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "tasks_active": self.tasks_active(self.epoch),
            "terms_active": [s.name for s in self.active_sources(self.epoch)],
            "train": self.epoch_means.means(),
            "train_steps": dict(self.epoch_means.counts),
        }
        if self.is_main:
            self._validate_and_select(record)
            self.history.append(record)
            self.log.append(EPOCHS, record)
        self.balancer.end_epoch()
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_means = EpochMeans()
        self._save_last()

    def _save_last(self) -> None:
        if self.output_dir is None:
            return
        ranks = None
        if distributed.is_distributed():
            own = rank_state(self.model, self.balancer, self.cfa_generator)
            ranks = distributed.gather_to_main(own)
        if self.is_main:
            state = self.state_dict() if ranks is None else {**self.state_dict(), "ranks": ranks}
            save_checkpoint(state, self.checkpoint_dir / LAST_CHECKPOINT)
        distributed.barrier()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "balancer": self.balancer.state_dict(),
            "rng": rng_state(),
            "cfa_generator": self.cfa_generator.get_state(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best,
            "history": self.history,
            **self.epoch_means.state_dict(),
            "trainer_config": asdict(self.config),
            **self.checkpoint_metadata,
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str | Path = "state") -> None:
        load_module_state(self.model, state["model"], source)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.balancer.load_state_dict(state["balancer"])
        set_rng_state(state["rng"])
        self.cfa_generator.set_state(state["cfa_generator"])
        self.step = state["step"]
        self.epoch = state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.selection.best = state["best"]
        self.history = list(state["history"])
        self.epoch_means.load_state_dict(state)

    def configuration(self) -> dict[str, Any]:
        """The run's configuration as written to ``config.json`` (and checked on resume)."""
        return {
            "trainer": asdict(self.config),
            "objective": [s.description() for s in self.term_sources] or None,
            "balancer": self.balancer.name or type(self.balancer).__name__,
            "tasks": list(self.task_losses),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "world_size": distributed.world_size(),
            "run_info": self.run_info,
        }

    def prepare(self, data) -> int:
        """Build optimiser and schedule for ``data``; returns the total number of steps."""
        self.batches_per_epoch = len(self.epoch_batches(data, 0))
        if self.batches_per_epoch == 0:
            raise InvalidParameterError(
                f"batch_size: {self.config.batch_size} leaves no full batch in "
                f"{num_samples(data)} samples (drop_last={self.config.drop_last}, "
                f"{distributed.world_size()} processes)"
            )
        total_steps = self.batches_per_epoch * self.config.epochs
        self._build_optimizer(total_steps)
        return total_steps

    def _start(self, data, resume: bool, overwrite: bool) -> int:
        """Prepare for ``data`` and either resume from ``last.pt`` (which must exist, with the
        run's own configuration) or seed a fresh run (in a folder holding no earlier run unless
        ``overwrite``); returns the total number of steps."""
        if resume and self.output_dir is None:
            raise InvalidParameterError("resume: a run without an output_dir has no checkpoint")
        if resume and overwrite:
            raise InvalidParameterError("overwrite: a resumed run continues its folder; drop one")
        if self.writes_files and not resume:
            claim_fresh_folder(self.output_dir, overwrite, self.folder_flags)
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_manifest(self.output_dir)
        total_steps = self.prepare(data)
        state = None
        if resume:
            last = require_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT, self.folder_flags)
            if self.writes_files:
                check_resumable(self.output_dir, self.configuration())
                if not (self.output_dir / MANIFEST).is_file():
                    write_manifest(self.output_dir)
            state = load_checkpoint(last, map_location=self.device)
            self.load_state_dict(state, last)
            self.log.truncate_after(self.step, self.epoch)
        else:
            random.seed(self.config.seed)
            np.random.seed(self.config.seed % 2**32)  # noqa: NPY002 (the global state third-party code draws from)
            torch.manual_seed(self.config.seed)
            self.cfa_generator.manual_seed(derive_seed(self.config.seed, "cfa"))
            self.log.start()
        distributed.broadcast_module(self.model)
        if state is not None:
            load_rank_state(state.get("ranks"), self.model, self.balancer, self.cfa_generator)
        self.log.write_config(self.configuration())
        return total_steps

    def _stop_requested(self) -> bool:
        limit = self.config.stop_after_steps
        return limit is not None and self.step >= limit

    def _train_epoch(self, data, bar) -> bool:
        """The remaining steps of the current epoch; returns whether the run was stopped."""
        remaining = self.epoch_batches(data, self.epoch)[self.batch_in_epoch :]
        for batch in self.iterate(data, remaining):
            row = self.train_step(batch)
            self.step += 1
            self.batch_in_epoch += 1
            self.epoch_means.add(row)
            if self.step % self.config.log_every == 0:
                self.log.append(METRICS, {"step": self.step, "epoch": self.epoch, **row})
            bar.update(1)
            if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                self._save_last()
            if self._stop_requested():
                return True
        return False

    def fit(self, data, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Train on ``data`` (a mapping of equally long tensors, or a dataset of dicts).

        With ``resume=True`` the run continues from ``checkpoint_dir/last.pt`` (refused when it
        is missing or the configuration differs from the run's ``config.json``,
        :mod:`coremtl.run_folder`). A fresh run refuses a folder holding an earlier run unless
        ``overwrite=True``. With ``output_dir=None`` nothing is written (in memory; no resume).
        Returns the final step, epoch, whether it was stopped early, and the best validation entry.
        """
        from tqdm.auto import tqdm

        total_steps = self._start(data, resume, overwrite)
        stopped = False
        show = self.config.progress and self.is_main
        with tqdm(total=total_steps, initial=self.step, disable=not show) as bar:
            while self.epoch < self.config.epochs and not stopped:
                stopped = self._train_epoch(data, bar)
                if not stopped:
                    self._end_epoch()
        if stopped:
            self._save_last()
        self.log.write_csv()
        return {"step": self.step, "epoch": self.epoch, "stopped": stopped, "best": self.best}
