"""The PyTorch candidate: a small MLP behind a scikit-learn interface, so it is saved and served like the rest.

Training runs on CUDA when the step's pod has a GPU; the fitted network is moved to the CPU before it is
saved, because serving pods have none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Binary MLP classifier with input standardisation and full-batch Adam training."""

    def __init__(
        self,
        hidden: int = 32,
        epochs: int = 300,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-4,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device

    def _network(self, n_features: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(n_features, self.hidden),
            nn.ReLU(),
            nn.Linear(self.hidden, self.hidden),
            nn.ReLU(),
            nn.Linear(self.hidden, 1),
        )

    def _tensor(self, features: pd.DataFrame | np.ndarray, device: str) -> torch.Tensor:
        values = np.asarray(features, dtype=np.float32)
        scaled = (values - self.mean_) / self.scale_
        return torch.from_numpy(scaled).to(device)

    def fit(self, features: pd.DataFrame, labels: pd.Series) -> TorchMLPClassifier:
        """Train the network; labels must be binary."""
        self.classes_ = np.unique(np.asarray(labels))
        if len(self.classes_) != 2:
            raise ValueError(f"TorchMLPClassifier is binary; got classes {self.classes_.tolist()}")
        values = np.asarray(features, dtype=np.float32)
        self.mean_ = values.mean(axis=0)
        self.scale_ = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0).astype(np.float32)
        self.n_features_in_ = values.shape[1]
        torch.manual_seed(self.seed)
        network = self._network(values.shape[1]).to(self.device)
        inputs = self._tensor(values, self.device)
        target = torch.from_numpy((np.asarray(labels) == self.classes_[1]).astype(np.float32)).to(self.device)
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        loss_fn = nn.BCEWithLogitsLoss()
        for _ in range(self.epochs):
            optimiser.zero_grad()
            loss = loss_fn(network(inputs).squeeze(1), target)
            loss.backward()
            optimiser.step()
        self.final_loss_ = float(loss.item())
        self.network_ = network.to("cpu").eval()
        return self

    def predict_proba(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Return (n, 2) class probabilities, computed on the CPU."""
        with torch.no_grad():
            positive = torch.sigmoid(self.network_(self._tensor(features, "cpu")).squeeze(1)).numpy()
        return np.column_stack([1.0 - positive, positive]).astype(np.float64)

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Return the most likely class per row."""
        return np.asarray(self.classes_[(self.predict_proba(features)[:, 1] >= 0.5).astype(int)])

    def __sklearn_tags__(self) -> Any:
        """Declare a binary classifier to scikit-learn's utilities."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


def build_model(seed: int, device: str, epochs: int = 300) -> TorchMLPClassifier:
    """Return the unfitted estimator for `device` ("cuda" or "cpu")."""
    return TorchMLPClassifier(epochs=epochs, seed=seed, device=device)
