"""The MLP at scale: mini-batches, a budget in passes with early stopping, and a time budget."""

import numpy as np
from scipy import sparse
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from components.train_torch.core import (
    BLOCK_ROWS,
    MAX_BATCH,
    MIN_BATCH,
    TorchMLPClassifier,
    batch_size,
    build_model,
)


def test_batches_grow_with_rows_within_bounds():
    assert batch_size(100) == MIN_BATCH
    assert batch_size(20_000) == 20_000 // 32
    assert batch_size(5_000_000) == MAX_BATCH


def test_an_easy_table_stops_early_well_inside_the_pass_budget(tables):
    table = tables["binary"]
    model = build_model(table.profile, seed=0, device="cpu", epochs=60).fit(table.x_train, table.y_train)
    network = model.steps[-1][1]
    # Stopped by patience (3 passes without a better validation loss), not by the 60-pass budget.
    assert network.passes_ < 60
    assert network.passes_ == network.best_epoch_ + network.patience
    assert not network.stopped_by_budget_
    assert roc_auc_score(table.y_test, model.predict_proba(table.x_test)[:, 1]) > 0.95


def test_the_time_budget_ends_training_with_the_weights_it_has(tables, capsys):
    table = tables["mixed"]
    model = build_model(table.profile, seed=0, device="cpu", epochs=50, time_budget_s=0.0)
    model.fit(table.x_train, table.y_train)
    network = model.steps[-1][1]
    assert network.stopped_by_budget_
    assert network.passes_ == 1  # one batch, then the budget: the pass is scored and its weights kept
    assert "time budget of 0s reached in pass 1" in capsys.readouterr().out
    probability = model.predict_proba(table.x_test)
    assert np.isfinite(probability).all()
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, rtol=1e-6)


def test_a_sparse_one_hot_matrix_learns_what_its_dense_copy_learns_and_is_never_made_dense_whole(tables):
    table = tables["mixed"]
    preprocessing = build_model(table.profile, seed=0, device="cpu").steps[0][1].fit(table.x_train, table.y_train)
    matrix = sparse.csr_matrix(preprocessing.transform(table.x_train))
    wide = sparse.hstack([matrix, sparse.random(matrix.shape[0], 200, density=0.01, random_state=0)]).tocsr()
    network = TorchMLPClassifier(seed=0, epochs=2, hidden=16)
    from_sparse = clone(network).fit(wide, table.y_train)
    from_dense = clone(network).fit(wide.toarray(), table.y_train)
    assert from_sparse.passes_ == from_dense.passes_ == 2
    np.testing.assert_allclose(from_sparse.scale_, from_dense.scale_, rtol=1e-4)
    np.testing.assert_allclose(from_sparse.predict_proba(wide), from_dense.predict_proba(wide), atol=1e-4)
    # Predicting sparse rows equals predicting their dense copy, in blocks of BLOCK_ROWS or in one.
    np.testing.assert_allclose(from_sparse.predict_proba(wide), from_sparse.predict_proba(wide.toarray()), atol=1e-6)
    copies = BLOCK_ROWS // wide.shape[0] + 1
    stacked = from_sparse.predict_proba(sparse.vstack([wide] * copies).tocsr())
    np.testing.assert_allclose(stacked, np.tile(from_sparse.predict_proba(wide), (copies, 1)), atol=1e-6)
