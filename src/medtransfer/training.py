"""The paper's training loop, made resumable: SGD with Nesterov momentum, class weights,
early stopping on val loss, one checkpoint per epoch.

Each epoch's batch order comes from (seed, epoch) alone, and the checkpoint holds the model
with its optimizer state plus the early-stopping state, so a job killed after epoch e and
rerun continues at e + 1 and ends with the same weights as a run that was never stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .io import atomic_path, read_json, write_json
from .jobs import PHASES

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: no weights from this run can be trusted."""


class BatchSequence:
    """Batches of a memory-mapped uint8 array, shuffled per epoch from (seed, epoch).

    Fed batch by batch to the compiled train and test steps (`run_epoch`), not through
    `model.fit`: Keras wraps a Python dataset in a new tf.data pipeline on every `fit` call,
    which made the loop 1.3x slower than bare `fit` on arrays, and more on a busy machine
    (benchmarks/README.md, "train")."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        rows: list[int],
        batch_size: int,
        sample_weights: np.ndarray | None = None,
        seed: int | None = None,
        epoch: int = 0,
    ):
        rows = np.asarray(rows)
        if seed is not None:
            rows = np.random.default_rng([seed, epoch]).permutation(rows)
        self.images, self.labels, self.rows = images, labels, rows
        self.batch_size, self.sample_weights = batch_size, sample_weights

    def __len__(self) -> int:
        return int(np.ceil(len(self.rows) / self.batch_size))

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        rows = self.rows[index * self.batch_size : (index + 1) * self.batch_size]
        ordered = np.sort(rows)  # memmap reads go forward; the batch's order does not matter
        x = np.asarray(self.images[ordered], dtype=np.float32)
        y = self.labels[ordered]
        if self.sample_weights is None:
            return x, y
        return x, y, self.sample_weights[y]


def run_epoch(model: keras.Model, batches: BatchSequence, training: bool) -> tuple[float, float]:
    """One pass of the compiled train (or test) step over every batch; returns the epoch's
    loss and accuracy as `fit` reports them: per-batch values averaged with the batch sizes
    (accuracy with the sample weights, where there are any)."""
    step = model.train_on_batch if training else model.test_on_batch
    loss_sum = accuracy_sum = weight_sum = 0.0
    for batch in batches:
        x, y, *weights = batch
        logs = step(x, y, sample_weight=weights[0] if weights else None, return_dict=True)
        loss_sum += float(logs["loss"]) * len(y)
        batch_weight = float(np.sum(weights[0])) if weights else float(len(y))
        accuracy_sum += float(logs["accuracy"]) * batch_weight
        weight_sum += batch_weight
    return loss_sum / len(batches.rows), accuracy_sum / weight_sum


@dataclass
class TrainingState:
    """What must survive a kill besides the weights: where we are and what early stopping saw."""

    fingerprint: str
    next_epoch: int = 0
    best_loss: float = float("inf")
    best_epoch: int = -1
    wait: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    model_file: str = ""  # this epoch's model + optimizer, named by epoch
    best_file: str = ""  # weights of the best epoch so far
    train_seconds: float = 0.0  # of all completed epochs, those before a kill included


def seed_generators(layer) -> list:
    """Every random-number generator of a model's layers (dropout and stochastic depth),
    nested models included."""
    found = [value for value in vars(layer).values()
             if isinstance(value, keras.random.SeedGenerator)]  # fmt: skip
    for child in getattr(layer, "layers", []):
        found += seed_generators(child)
    return found


def reseed_for_epoch(model: keras.Model, seed: int, epoch: int) -> None:
    """Each epoch's dropout masks from (seed, epoch, layer) alone, as its batch order. Keras
    does not save a generator's state with the model, so without this a resumed run would
    draw other masks than an uninterrupted one (EfficientNet's stochastic depth did)."""
    for index, generator in enumerate(seed_generators(model)):
        start = np.random.default_rng([seed, epoch, index]).integers(0, 2**31 - 1)
        generator.state.assign(keras.ops.convert_to_tensor([start, 0], dtype=generator.state.dtype))


def compile_for_training(model: keras.Model, settings: dict[str, Any]) -> None:
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=settings["learning_rate"],
            momentum=settings["momentum"],
            nesterov=settings["nesterov"],
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile(bool(settings.get("xla", False))),
    )


def jit_compile(xla: bool) -> bool:
    """What `accelerator.xla` means on the process's backend: TensorFlow compiles with XLA
    only when asked; JAX always does (uncompiled JAX runs op by op, many times slower);
    PyTorch has no XLA path in Keras."""
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "torch" and xla:
        from .runtime import BackendError

        raise BackendError("accelerator.xla: XLA needs keras_backend tensorflow or jax, not torch")
    return xla


def fingerprint(settings: dict[str, Any], rows: dict[str, list[int]], seed: int) -> str:
    """A checkpoint is only resumed by the same job: same settings, split and seed. The epoch
    cap is left out: raising it continues a finished or killed run where it stopped."""
    kept = {k: v for k, v in settings.items() if k != "epochs"}
    text = json.dumps({"settings": kept, "rows": rows, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_checkpoint(
    folder: Path, model: keras.Model, state: TrainingState, improved: bool
) -> None:
    """Files of an epoch get names of their own; state.json, replaced last, names the ones
    that belong together. A kill at any instant leaves the previous complete epoch."""
    state.model_file = f"epoch{state.next_epoch:04d}.keras"
    with atomic_path(folder / state.model_file) as tmp:
        model.save(tmp)
    if improved:
        state.best_file = f"best{state.next_epoch:04d}.weights.h5"
        with atomic_path(folder / state.best_file) as tmp:
            model.save_weights(tmp)
    write_json(folder / "state.json", asdict(state))
    for stale in folder.iterdir():
        if stale.name not in ("state.json", state.model_file, state.best_file):
            stale.unlink(missing_ok=True)


def _load_checkpoint(folder: Path, expected: str) -> tuple[keras.Model, TrainingState] | None:
    state_file = folder / "state.json"
    if not state_file.is_file():
        return None
    state = TrainingState(**read_json(state_file))
    if state.fingerprint != expected:
        log.warning("checkpoint in %s belongs to other settings; starting afresh", folder)
        return None
    model = keras.saving.load_model(folder / state.model_file, safe_mode=True)
    log.info("resuming from checkpoint %s at epoch %d", folder, state.next_epoch + 1)
    return model, state


def train(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    split: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    checkpoint_dir: str | Path,
) -> tuple[keras.Model, TrainingState]:
    """Train on split['train'], stop early on split['val']; returns the model and its state
    (history, best epoch, training seconds summed over every completed epoch)."""
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = {"train": split["train"], "val": split["val"]}
    expected = fingerprint(settings, rows, seed)
    resumed = _load_checkpoint(folder, expected)
    if resumed:
        model, state = resumed
    else:
        compile_for_training(model, settings)
        state = TrainingState(expected)
    weights = (
        np.asarray(split["class_weights"], dtype=np.float32)
        if settings.get("class_weights", True)
        else None
    )
    labels = np.asarray(labels, dtype=np.int64)
    batch = settings["batch_size"]
    val_data = validation_batches(images, labels, split, batch)
    while state.next_epoch < settings["epochs"] and not state.stopped_early:
        started = time.monotonic()
        epoch = state.next_epoch
        train_data = BatchSequence(images, labels, split["train"], batch, weights, seed, epoch)
        reseed_for_epoch(model, seed, epoch)
        loss, accuracy = run_epoch(model, train_data, training=True)
        val_loss, val_acc = run_epoch(model, val_data, training=False)
        record = {
            "epoch": epoch + 1,
            "loss": loss,
            "accuracy": accuracy,
            "val_loss": float(val_loss),
            "val_accuracy": float(val_acc),
        }
        if not (np.isfinite(record["loss"]) and np.isfinite(record["val_loss"])):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch + 1} (loss {record['loss']}, val loss "
                f"{record['val_loss']}); lower learning_rate (now {settings['learning_rate']})"
            )
        state.history.append(record)
        improved = val_loss < state.best_loss
        if improved:
            state.best_loss, state.best_epoch, state.wait = float(val_loss), epoch + 1, 0
        else:
            state.wait += 1
            state.stopped_early = state.wait >= settings["patience"]
        state.next_epoch = epoch + 1
        seconds = time.monotonic() - started
        state.train_seconds += seconds
        PHASES.mark("first_epoch")  # the first epoch of this process: tracing included
        PHASES.notes.setdefault("epoch_seconds", []).append(round(seconds, 3))
        log.info(
            "epoch %d/%d loss %.4f acc %.3f val_loss %.4f val_acc %.3f",
            epoch + 1,
            settings["epochs"],
            record["loss"],
            record["accuracy"],
            record["val_loss"],
            record["val_accuracy"],
        )
        _save_checkpoint(folder, model, state, improved)
    if settings.get("keep_best", True) and state.best_file:
        model.load_weights(folder / state.best_file)
        log.info(
            "restored the weights of epoch %d (val loss %.4f)", state.best_epoch, state.best_loss
        )
    return model, state


def validation_batches(
    images: np.ndarray, labels: list[int], split: dict[str, Any], batch_size: int
) -> BatchSequence:
    return BatchSequence(images, np.asarray(labels, dtype=np.int64), split["val"], batch_size)


def remove_checkpoint(checkpoint_dir: str | Path) -> None:
    """Called once the job's outputs are complete."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


def history_csv(state: TrainingState) -> str:
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    lines = [",".join(columns)]
    lines += [",".join(f"{row[c]:.6g}" for c in columns) for row in state.history]
    return "\n".join(lines) + "\n"
