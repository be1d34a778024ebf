"""Find, verify and load the version to score with, exactly as the model service does before it serves.

The model service's own path (`serving/model_service/registry.py` then `predictor.py`): the alias or version is
resolved in the registry, the files are fetched once per machine, checked against their signature
(`components/common/signing.py`) and their loader against the allow-list (`components/common/loaders.py`)
before anything of them is read or imported, then plinth's models load on the fast path and anyone else's
through `mlflow.pyfunc`. The settings come from the same variables (PLINTH_VERIFY_KEY,
PLINTH_REQUIRE_SIGNATURE, PLINTH_ALLOWED_LOADERS, MLFLOW_ALLOW_PICKLE_DESERIALIZATION ...), so a version a
service would refuse is refused here too, with the service's one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from serving.model_service import settings as service_settings
from serving.model_service.predictor import Predictor, open_predictor
from serving.model_service.registry import ModelLoadError, ModelRef, fetch


class ModelError(RuntimeError):
    """The version cannot be scored with: unknown, unreadable, unsigned where required or tampered; one line."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified version, its predictor loaded."""

    ref: ModelRef
    predictor: Predictor


def selection(model_name: str, version: str, alias: str) -> dict[str, str]:
    """Return the service's variables that select `version` (when given) or else `alias` of `model_name`.

    Raises:
        ModelError: no model name, or neither a version nor an alias.
    """
    if not model_name.strip():
        raise ModelError("model_name is empty: name the registered model to score with")
    if not version.strip() and not alias.strip():
        raise ModelError("give a model version or an alias (e.g. champion)")
    chosen = {service_settings.ENV_MODEL_NAME: model_name.strip()}
    if version.strip():
        chosen[service_settings.ENV_MODEL_VERSION] = version.strip()
    else:
        chosen[service_settings.ENV_MODEL_ALIAS] = alias.strip()
    return chosen


def open_model(
    model_name: str, version: str, alias: str, tracking_uri: str, env: Mapping[str, str] | None = None
) -> LoadedModel:
    """Resolve, fetch, verify and load one version (the model service's `registry.fetch` and predictor).

    Raises:
        ModelError: one line: the model, alias or version is unknown, the registry unreachable, the files
            unsigned (where PLINTH_REQUIRE_SIGNATURE=true), tampered, a pickle or of a refused loader.
    """
    env = os.environ if env is None else env
    variables = {
        **{key: value for key, value in env.items() if key != service_settings.ENV_MODEL_VERSION},
        **selection(model_name, version, alias),
        service_settings.ENV_TRACKING_URI: tracking_uri,
    }
    try:
        settings = service_settings.Settings.from_env(variables)
        ref = fetch(settings)
        predictor = open_predictor(ref, settings)
        predictor.load()
    except (service_settings.SettingsError, ModelLoadError) as error:
        raise ModelError(" ".join(str(error).split())) from error
    return LoadedModel(ref, predictor)
