import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import StandardScaler

from components.common.features import build_preprocessor, prepare_features, with_preprocessing
from components.train_sklearn.core import build_model


def test_numeric_complete_tables_are_imputed_too_a_served_row_may_have_a_gap(tables):
    assert isinstance(build_preprocessor(tables["binary"].profile), ColumnTransformer)
    assert isinstance(build_preprocessor(tables["binary"].profile, impute=False), StandardScaler)
    assert build_preprocessor(tables["binary"].profile, scale=False, impute=False) is None  # XGBoost's
    assert isinstance(build_preprocessor(tables["mixed"].profile), ColumnTransformer)


def test_prepared_features_are_typed_as_the_signature_says(tables):
    mixed = tables["mixed"]
    prepared = prepare_features(mixed.frame, mixed.profile)
    assert list(prepared.columns) == mixed.profile.feature_names
    assert prepared["age"].dtype == np.float64
    assert prepared["support_calls"].dtype == np.int64
    assert prepared["plan"].isna().any()


def test_one_fitted_object_scores_raw_rows_with_missing_values_and_unseen_categories(tables):
    mixed = tables["mixed"]
    model = build_model(mixed.profile, seed=0).fit(mixed.x_train, mixed.y_train)
    odd = pd.DataFrame(
        {
            "age": [np.nan, 40.0],
            "income": [np.nan, 1e9],
            "plan": [None, "enterprise"],
            "region": ["mars", "north"],
            "has_card": [None, True],
            "support_calls": [99, 0],
        }
    )
    probability = model.predict_proba(prepare_features(odd, mixed.profile))
    assert probability.shape == (2, 2)
    assert np.isfinite(probability).all()
    np.testing.assert_allclose(probability.sum(axis=1), 1.0)


def test_without_a_preprocessor_the_learner_stands_alone():
    learner = StandardScaler()
    assert with_preprocessing(None, learner) is learner
