import pandas as pd
import pytest

from components.common.modeling import split_features
from components.ingest.core import load_source
from components.split.core import split


@pytest.fixture(scope="session")
def breast_cancer() -> pd.DataFrame:
    return load_source("sklearn:breast_cancer")


@pytest.fixture(scope="session")
def breast_cancer_split(breast_cancer):
    train, test = split(breast_cancer, "target", 0.2, seed=0)
    return (*split_features(train, "target"), *split_features(test, "target"))
