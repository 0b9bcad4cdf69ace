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


class CheckpointMismatch(ValueError):
    """A checkpoint's arrays do not fit the network being trained."""


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
    step = batch_step(model, training)
    loss_sum = accuracy_sum = weight_sum = 0.0
    for batch in batches:
        x, y, *weights = batch
        logs = step(x, y, weights[0] if weights else None)
        loss_sum += float(logs["loss"]) * len(y)
        batch_weight = float(np.sum(weights[0])) if weights else float(len(y))
        accuracy_sum += float(logs["accuracy"]) * batch_weight
        weight_sum += batch_weight
    return loss_sum / len(batches.rows), accuracy_sum / weight_sum


def batch_step(model: keras.Model, training: bool):
    """The model's train (or test) step as a function of one batch (x, y, sample weights or
    None) returning that batch's logs.

    On TensorFlow, Keras' `train_on_batch` traces its step once per batch shape, so an epoch
    whose last batch is smaller traces it twice, and the optimizer's variables, made inside
    the first trace, make TensorFlow trace that one twice as well: EfficientNet-Lite0's
    first epoch at 32 px took 35 s of which 32 s were tracing (benchmarks/README.md,
    "tracing"). Here the step is traced once per job for any batch size, after `train` has
    built the optimizer; the arithmetic is Keras' own `train_step`/`test_step`, so the numbers
    are the same. JAX and PyTorch keep Keras' per-batch calls."""
    steps = model.__dict__.setdefault("_medtransfer_steps", {})
    key = (training, id(model.optimizer))  # compiling again makes new steps
    if key not in steps:
        steps[key] = _make_batch_step(model, training)
    return steps[key]


def _make_batch_step(model: keras.Model, training: bool):
    if keras.backend.backend() != "tensorflow":
        on_batch = model.train_on_batch if training else model.test_on_batch
        return lambda x, y, w: on_batch(x, y, sample_weight=w, return_dict=True)
    import tensorflow as tf

    keras_step = model.train_step if training else model.test_step
    traced = {}  # one trace for batches with sample weights, one for those without

    def step(x, y, w):
        given = (x, y) if w is None else (x, y, w)
        if len(given) not in traced:
            signature = [tf.TensorSpec((None, *np.shape(a)[1:]), a.dtype) for a in given]
            traced[len(given)] = tf.function(
                lambda *data: keras_step((*data, None)[:3]),
                input_signature=signature,
                jit_compile=bool(model.jit_compile),
            )
        model.reset_metrics()  # per-batch logs, as train_on_batch gives
        return traced[len(given)](*given)

    return step


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
    that belong together. A kill at any instant leaves the previous complete epoch.

    An epoch's file holds what resuming needs and nothing else: the values of the model's
    weights and of the optimizer's variables, as plain arrays (the job builds the network
    itself). Writing the whole model as .keras plus a separate best-weights file took 1.3 to
    1.6 s per epoch for EfficientNet-Lite0, a third of a 32-px epoch; an improved epoch's
    file is now also the best one."""
    state.model_file = f"epoch{state.next_epoch:04d}.npz"
    with atomic_path(folder / state.model_file) as tmp, open(tmp, "wb") as out:
        np.savez(out, *_values(model.weights), *_values(model.optimizer.variables))
    if improved:
        state.best_file = state.model_file
    write_json(folder / "state.json", asdict(state))
    for stale in folder.iterdir():
        if stale.name not in ("state.json", state.model_file, state.best_file):
            stale.unlink(missing_ok=True)


def _values(variables) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _restore(model: keras.Model, file: Path, with_optimizer: bool) -> None:
    """Assign a checkpoint's arrays to the model's weights (and optimizer variables). Every
    shape is checked before anything is assigned: a file that does not fit this network
    raises CheckpointMismatch, never loads in part."""
    weights, optimizer = list(model.weights), list(model.optimizer.variables)
    with np.load(file) as stored:
        arrays = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    if len(arrays) != len(weights) + len(optimizer) or any(
        v.shape != a.shape for v, a in zip(weights + optimizer, arrays, strict=False)
    ):
        raise CheckpointMismatch(f"{file}: the checkpoint does not fit this network")
    restored = weights + optimizer if with_optimizer else weights
    for variable, value in zip(restored, arrays, strict=False):  # best weights: the first ones
        variable.assign(value)


def _load_checkpoint(folder: Path, expected: str, model: keras.Model) -> TrainingState | None:
    state_file = folder / "state.json"
    if not state_file.is_file():
        return None
    state = TrainingState(**read_json(state_file))
    if state.fingerprint != expected or not state.model_file.endswith(".npz"):
        log.warning("checkpoint in %s belongs to other settings; starting afresh", folder)
        return None
    try:
        _restore(model, folder / state.model_file, with_optimizer=True)
    except (OSError, ValueError) as error:  # a changed network (CheckpointMismatch), a bad file
        log.warning("%s; starting afresh", error)
        return None
    log.info("resuming from checkpoint %s at epoch %d", folder, state.next_epoch + 1)
    return state


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
    compile_for_training(model, settings)
    model.optimizer.build(model.trainable_variables)  # its variables exist before a resume
    state = _load_checkpoint(folder, expected, model) or TrainingState(expected)
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
        _restore(model, folder / state.best_file, with_optimizer=False)
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
