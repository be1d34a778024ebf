"""The PyTorch candidate: a small MLP behind a scikit-learn interface, so it is saved and served like the rest.

One network body for every task: a single logit (sigmoid) for binary classification, one logit per class
(softmax) for multiclass, one output on a standardised target for regression. It learns in shuffled
mini-batches (Adam), so one pass over a million rows costs what a pass costs, and its budget is counted in
passes over the data (`epochs`, default 20): a seeded slice of the training rows is scored after every pass,
training stops after `patience` passes without improvement, and the best pass's weights are kept (early
stopping, as scikit-learn's MLP offers). A time budget ends training after the batch that crosses it, with
the best weights so far, and says so. Training runs on CUDA when
the step's pod has a GPU; the fitted network is moved to the CPU before it is saved, because serving pods
have none. The shared preprocessing sits in front (`features.py`); the network also standardises what it
receives, so it can be used on raw numeric frames too.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, TensorDataset

from components.common.features import build_preprocessor, with_preprocessing
from components.common.profile import ReferenceProfile

# Where the fitted network's weights sit in the saved state: parameter name → numpy array.
WEIGHTS = "network_weights_"
# Seconds one fit may take by default (the pipeline's `time_budget_s` parameter sets it per run).
DEFAULT_TIME_BUDGET_S = 600.0
# Mini-batch size bounds: small tables still get a few dozen steps per pass, large ones wide batches.
MIN_BATCH, MAX_BATCH, STEPS_PER_PASS = 16, 2048, 32
# Rows made dense at once when predicting or checking a pass: bounds the float32 block at any table size.
BLOCK_ROWS = 65_536


def batch_size(n_rows: int) -> int:
    """Return the mini-batch size for `n_rows` fitting rows: about STEPS_PER_PASS steps a pass, within bounds."""
    return int(min(MAX_BATCH, max(MIN_BATCH, n_rows // STEPS_PER_PASS)))


def world() -> tuple[int, int]:
    """Return (this process's rank, number of processes) of the torch.distributed group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def agreed(value: float, processes: int, op: Any = None) -> float:
    """Return `value` reduced over every process (the maximum by default), so all of them take one decision."""
    if processes == 1:
        return value
    reduced = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(reduced, op=op or dist.ReduceOp.MAX)
    return float(reduced.item())


class _TorchMLP(BaseEstimator):
    """Network, input standardisation and the mini-batch Adam loop that every task shares."""

    def __init__(
        self,
        hidden: int = 32,
        epochs: int = 20,
        learning_rate: float = 0.005,
        weight_decay: float = 1e-4,
        seed: int = 0,
        device: str = "cpu",
        validation_fraction: float = 0.15,
        patience: int = 3,
        time_budget_s: float = DEFAULT_TIME_BUDGET_S,
        class_weight: str | None = None,
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.time_budget_s = time_budget_s
        self.class_weight = class_weight

    def _network(self, n_features: int, n_outputs: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(n_features, self.hidden),
            nn.ReLU(),
            nn.Linear(self.hidden, self.hidden),
            nn.ReLU(),
            nn.Linear(self.hidden, n_outputs),
        )

    def _tensor(self, features: Any, device: str) -> torch.Tensor:
        """Return rows standardised as float32 on `device`; sparse rows (one-hot columns) are made dense here."""
        values = features.toarray() if sparse.issparse(features) else features
        scaled = (np.asarray(values, dtype=np.float32) - self.mean_) / self.scale_
        return torch.from_numpy(scaled).to(device)

    def _standardise(self, features: Any) -> Any:
        """Set `mean_`/`scale_` from the fitting rows; return them as the batches are taken from.

        Dense rows become one float32 copy, standardised in place and shared with torch: no temporaries of the
        table's size. Sparse rows (the preprocessing's one-hot columns, most of them zeros) stay sparse: the
        column moments come from the sparse matrix and each mini-batch is made dense and standardised on its
        own, so the step never holds the dense matrix (at 640,000 rows and 146 columns it was 0.75 GB as
        float64 plus 0.37 GB as float32, the pipeline's peak).
        """
        if sparse.issparse(features):
            matrix = sparse.csr_matrix(features, dtype=np.float64)
            mean = np.asarray(matrix.mean(axis=0)).ravel()
            square = np.asarray(matrix.multiply(matrix).mean(axis=0)).ravel()
            std = np.sqrt(np.maximum(square - mean**2, 0.0))
            self.mean_ = mean.astype(np.float32)
            self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)
            return matrix
        values = np.array(features, dtype=np.float32, copy=True)
        self.mean_ = values.mean(axis=0)
        values -= self.mean_
        std = np.sqrt(np.einsum("ij,ij->j", values, values) / max(len(values), 1)).astype(np.float32)
        self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)
        values /= self.scale_
        return torch.from_numpy(values).to(self.device)

    def _rows(self, inputs: Any, rows: torch.Tensor) -> torch.Tensor:
        """Return the standardised input rows `rows` (positions) as a tensor on the training device."""
        if isinstance(inputs, torch.Tensor):
            return inputs[rows]
        return self._tensor(inputs[rows.cpu().numpy()], self.device)

    def _train(self, features: Any, target: torch.Tensor, n_outputs: int, loss_fn: nn.Module) -> None:
        """Fit on one CPU thread: a step on at most MAX_BATCH rows is too small for intra-op threads.

        Their synchronisation dominates instead (measured on a busy 2-core machine: 22 s with 2 threads,
        0.9 s with one, for the same 18 passes); the other candidates run beside this one anyway.
        """
        threads = torch.get_num_threads()
        if self.device == "cpu":
            torch.set_num_threads(1)
        try:
            self._train_batches(features, target, n_outputs, loss_fn)
        finally:
            torch.set_num_threads(threads)

    def _train_batches(self, features: Any, target: torch.Tensor, n_outputs: int, loss_fn: nn.Module) -> None:
        """Standardise the inputs, then fit the network in mini-batches, keeping the best pass's weights."""
        started = time.monotonic()
        inputs = self._standardise(features)
        self.n_features_in_ = inputs.shape[1]
        torch.manual_seed(self.seed)
        network = self._network(inputs.shape[1], n_outputs).to(self.device)
        target = target.to(self.device)
        fit_rows, check_rows = self._holdout(inputs.shape[0])
        if not isinstance(inputs, torch.Tensor):  # the rows that pick the pass, made dense once
            check_inputs = torch.cat([self._rows(inputs, block) for block in check_rows.split(BLOCK_ROWS)])
        rank, processes = world()
        # Under torch.distributed (torchrun, Kubeflow Trainer) each process steps through its own shard of
        # every pass (DistributedSampler) with 1/processes of the batch, and DDP averages the gradients: the
        # same global batch, the same weights in every process.
        size = max(1, batch_size(len(fit_rows)) // processes)
        trained = DistributedDataParallel(network) if processes > 1 else network
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        shuffle = torch.Generator().manual_seed(self.seed)
        shards: DistributedSampler[Any] | None = None
        if processes > 1:  # the sampler needs only the number of rows to deal out
            shards = DistributedSampler(TensorDataset(fit_rows), processes, rank, seed=self.seed)

        def loss_on(rows: torch.Tensor, model: nn.Module = network) -> torch.Tensor:
            output = model(self._rows(inputs, rows))
            loss: torch.Tensor = loss_fn(output.squeeze(1) if n_outputs == 1 else output, target[rows])
            return loss

        def check_loss() -> float:
            if isinstance(inputs, torch.Tensor):
                return float(loss_on(check_rows).item())
            output = network(check_inputs)
            return float(loss_fn(output.squeeze(1) if n_outputs == 1 else output, target[check_rows]).item())

        best, best_state, waited = float("inf"), None, 0
        self.passes_, self.stopped_by_budget_, self.best_epoch_ = 0, False, 0
        for epoch in range(self.epochs):
            if shards is None:
                order = fit_rows[torch.randperm(len(fit_rows), generator=shuffle).to(self.device)]
            else:
                shards.set_epoch(epoch)
                order = fit_rows[torch.tensor(list(shards), dtype=torch.int64).to(self.device)]
            for first in range(0, len(order), size):
                optimiser.zero_grad()
                loss = loss_on(order[first : first + size], trained)
                loss.backward()
                optimiser.step()
                if agreed(time.monotonic() - started >= self.time_budget_s, processes):
                    self.stopped_by_budget_ = True
                    break
            self.passes_ = epoch + 1
            with torch.no_grad():
                checked = agreed(check_loss(), processes)
            if checked < best:
                best, waited = checked, 0
                best_state = {key: value.detach().clone() for key, value in network.state_dict().items()}
                self.best_epoch_ = epoch + 1
            else:
                waited += 1
            if self.stopped_by_budget_:
                print(
                    f"train torch: time budget of {self.time_budget_s:g}s reached in pass {epoch + 1}; "
                    f"keeping pass {self.best_epoch_}'s weights"
                )
                break
            if waited >= self.patience:
                break
        if best_state is not None:
            network.load_state_dict(best_state)
        self.final_loss_ = float(loss.item())
        self.validation_loss_ = best
        self.network_ = network.to("cpu").eval()
        if processes > 1:
            print(f"train torch: rank {rank} of {processes} stepped through {len(order)} rows a pass")

    def _holdout(self, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (rows to fit, rows that pick the epoch); all rows both ways when there are too few to split."""
        rows = torch.randperm(n_rows, generator=torch.Generator().manual_seed(self.seed)).to(self.device)
        held = int(n_rows * self.validation_fraction)
        if held < 10:
            return rows, rows
        return rows[held:], rows[:held]

    def _outputs(self, features: Any) -> torch.Tensor:
        """Return the network's outputs, BLOCK_ROWS rows at a time (a million rows never dense at once)."""
        dense = isinstance(features, np.ndarray) or sparse.issparse(features)
        values = features if dense else np.asarray(features, dtype=np.float32)
        with torch.no_grad():
            blocks = [
                self.network_(self._tensor(values[first : first + BLOCK_ROWS], "cpu"))
                for first in range(0, max(values.shape[0], 1), BLOCK_ROWS)
            ]
        return torch.cat(blocks) if len(blocks) > 1 else blocks[0]

    def __getstate__(self) -> dict[str, Any]:
        """Return the state with the fitted network as named numpy arrays (its state dict), no torch objects.

        The model is saved with skops, which rebuilds only types it is told to trust and stores arrays as
        arrays: the network's weights then load without running code from the file (`modeling.py`).
        """
        state = dict(super().__getstate__())
        network = state.pop("network_", None)
        if network is not None:
            state[WEIGHTS] = {key: value.detach().cpu().numpy() for key, value in network.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the state, rebuilding the network from its weights (the layer sizes follow from their shapes)."""
        state = dict(state)
        weights = state.pop(WEIGHTS, None)
        super().__setstate__(state)
        if weights is not None:
            last_layer = max(weights, key=lambda name: int(name.split(".")[0]))
            network = self._network(weights["0.weight"].shape[1], weights[last_layer].shape[0])
            network.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value in weights.items()})
            self.network_ = network.eval()


class TorchMLPClassifier(ClassifierMixin, _TorchMLP):
    """MLP classifier: binary (one sigmoid logit) or multiclass (softmax over one logit per class)."""

    def fit(self, features: pd.DataFrame | np.ndarray, labels: pd.Series | np.ndarray) -> TorchMLPClassifier:
        """Train the network on any number (at least 2) of classes."""
        self.classes_ = np.unique(np.asarray(labels))
        if len(self.classes_) < 2:
            raise ValueError(f"TorchMLPClassifier needs at least 2 classes; got {self.classes_.tolist()}")
        index = np.searchsorted(self.classes_, np.asarray(labels))
        # "balanced": each class's loss weighed by n / (classes * its count), as scikit-learn's class_weight.
        counts = np.bincount(index, minlength=len(self.classes_)).astype(np.float32)
        weight = torch.from_numpy(len(index) / (len(counts) * np.maximum(counts, 1.0)))
        balanced = self.class_weight == "balanced"
        if len(self.classes_) == 2:
            # One logit: weighing the positive rows by count(negative) / count(positive) is the same balance.
            positive = (weight[1] / weight[0]).reshape(1) if balanced else None
            loss: nn.Module = nn.BCEWithLogitsLoss(pos_weight=positive)
            self._train(features, torch.from_numpy(index.astype(np.float32)), 1, loss)
        else:
            loss = nn.CrossEntropyLoss(weight=weight if balanced else None)
            self._train(features, torch.from_numpy(index.astype(np.int64)), len(self.classes_), loss)
        return self

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Return (n, n_classes) class probabilities, computed on the CPU."""
        output = self._outputs(features)
        if len(self.classes_) == 2:
            positive = torch.sigmoid(output.squeeze(1)).numpy()
            return np.column_stack([1.0 - positive, positive]).astype(np.float64)
        return torch.softmax(output, dim=1).numpy().astype(np.float64)

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Return the most likely class per row."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(features), axis=1)])


class TorchMLPRegressor(RegressorMixin, _TorchMLP):
    """MLP regressor trained with mean squared error on a standardised target."""

    def fit(self, features: pd.DataFrame | np.ndarray, target: pd.Series | np.ndarray) -> TorchMLPRegressor:
        """Train the network on the standardised target."""
        values = np.asarray(target, dtype=np.float64)
        self.target_mean_ = float(values.mean())
        self.target_scale_ = float(values.std()) or 1.0
        scaled = ((values - self.target_mean_) / self.target_scale_).astype(np.float32)
        self._train(features, torch.from_numpy(scaled), 1, nn.MSELoss())
        return self

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Return the predicted value per row, in the target's units."""
        scaled = self._outputs(features).squeeze(1).numpy().astype(np.float64)
        return np.asarray(scaled * self.target_scale_ + self.target_mean_)


def build_model(
    profile: ReferenceProfile,
    seed: int,
    device: str,
    epochs: int = 20,
    time_budget_s: float = DEFAULT_TIME_BUDGET_S,
    hidden: int = 32,
    learning_rate: float = 0.005,
    weight_decay: float = 1e-4,
    class_weight: str | None = None,
) -> BaseEstimator:
    """Return the unfitted estimator for `profile`'s task on `device` ("cuda" or "cpu").

    `epochs` is the most passes over the training rows (early stopping usually ends sooner);
    `time_budget_s` ends training after the batch that crosses it. The keywords after it are the searched
    parameters (components/search), their defaults the fixed settings; `class_weight="balanced"` weighs
    the loss of each class inversely to its frequency (classification only).
    """
    network: BaseEstimator
    settings: dict[str, Any] = {"epochs": epochs, "seed": seed, "device": device, "time_budget_s": time_budget_s}
    settings.update(hidden=hidden, learning_rate=learning_rate, weight_decay=weight_decay)
    if profile.task.is_classification:
        settings["class_weight"] = class_weight
    network = TorchMLPClassifier(**settings) if profile.task.is_classification else TorchMLPRegressor(**settings)
    return with_preprocessing(build_preprocessor(profile, sparse=True), network)
