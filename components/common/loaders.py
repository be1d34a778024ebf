"""Which model loaders may run: plinth's own, and only the others someone listed.

`mlflow.pyfunc.load_model` imports the module that the model's own MLmodel file names
(`python_function.loader_module`) and puts the model's `code/` directory on the import path first. Whoever
registers a model therefore chooses code that runs in the serving pod, signed or not: a signature says the
files are the ones registered, not that their code is safe. So, before any code of a model is imported, its
MLmodel is read as YAML (no import) and its loader decided here, once for the model service and the rollout:

- plinth's own loader (`mlflow.sklearn`, skops files that `modeling.py` rebuilds from trusted types) is allowed,
  as long as the model ships no code of its own;
- any other loader (`mlflow.pyfunc.model`, which runs a PythonModel or a models-from-code file; a module in
  the model's `code/`) is refused unless listed in PLINTH_ALLOWED_LOADERS, or the registered model's name is
  listed in PLINTH_ALLOWED_FOREIGN_MODELS (chart values `signing.allowedLoaders`, `signing.allowedForeignModels`).

A refusal is a `Verdict` (`loader_refused`): never loaded, never ready, never given traffic.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.common.signing import LOADER_REFUSED, Verdict

ENV_ALLOWED_LOADERS = "PLINTH_ALLOWED_LOADERS"
ENV_ALLOWED_FOREIGN_MODELS = "PLINTH_ALLOWED_FOREIGN_MODELS"
VALUE_LOADERS, VALUE_MODELS = "signing.allowedLoaders", "signing.allowedForeignModels"
MLMODEL_FILE = "MLmodel"
PYFUNC = "python_function"
# The loader of every model plinth trains (`modeling.py`: the sklearn flavor, skops format).
PLINTH_LOADERS = frozenset({"mlflow.sklearn"})
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Loader:
    """What a model's MLmodel says will run when it is loaded: the pyfunc loader module, its flavors, its code."""

    module: str | None
    flavors: tuple[str, ...]
    ships_code: bool
    # The sklearn flavor's `serialization_format` (plinth's models: skops), None without that flavor.
    sklearn_format: str | None = None

    @classmethod
    def read(cls, model_dir: Path) -> Loader:
        """Read the loader from `model_dir`'s MLmodel file as plain YAML: nothing of the model is imported.

        Raises:
            ValueError: the MLmodel file is missing, not YAML, or not a mapping of flavors.
        """
        path = model_dir / MLMODEL_FILE
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"its {MLMODEL_FILE} cannot be read ({type(error).__name__})") from error
        flavors = document.get("flavors") if isinstance(document, dict) else None
        if not isinstance(flavors, dict):
            raise ValueError(f"its {MLMODEL_FILE} names no flavors")
        pyfunc: Any = flavors.get(PYFUNC) or {}
        module = pyfunc.get("loader_module") if isinstance(pyfunc, dict) else None
        # Any flavor's `code` directory goes on sys.path when that flavor loads (MLflow's code_paths).
        ships_code = any(isinstance(conf, dict) and conf.get("code") for conf in flavors.values())
        sklearn = flavors.get("sklearn")
        found = sklearn.get("serialization_format") if isinstance(sklearn, dict) else None
        return cls(
            str(module) if module else None,
            tuple(str(name) for name in flavors),
            bool(ships_code),
            str(found) if found else None,
        )


def _names(env: Mapping[str, str], variable: str, module_names: bool) -> frozenset[str]:
    """Read a comma-separated list; module names must look like `package.module`.

    Raises:
        ValueError: an entry is not a module name (the message names the variable).
    """
    names = frozenset(part.strip() for part in env.get(variable, "").split(",") if part.strip())
    bad = sorted(name for name in names if module_names and not MODULE_NAME.fullmatch(name))
    if bad:
        raise ValueError(f"{variable}: {bad[0]!r} is not a Python module name (comma-separated, e.g. mlflow.sklearn)")
    return names


@dataclass(frozen=True)
class LoaderPolicy:
    """The loaders allowed beyond plinth's own, and the registered models allowed whatever their loader."""

    loaders: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoaderPolicy:
        """Read PLINTH_ALLOWED_LOADERS and PLINTH_ALLOWED_FOREIGN_MODELS (both empty unless set).

        Raises:
            ValueError: PLINTH_ALLOWED_LOADERS holds something that is not a module name.
        """
        env = os.environ if env is None else env
        return cls(_names(env, ENV_ALLOWED_LOADERS, True), _names(env, ENV_ALLOWED_FOREIGN_MODELS, False))

    def check(self, model_dir: Path, name: str, version: str) -> Verdict | None:
        """Return the refusal of version `version` of `name` whose files are in `model_dir`, None when it may load."""
        if name in self.models:
            return None
        what = f"{name} v{version} refused"
        try:
            loader = Loader.read(model_dir)
        except ValueError as error:
            return Verdict(LOADER_REFUSED, f"{what}: {error}, so its loader cannot be decided")
        if loader.module in self.loaders:
            return None
        allow = (
            f"list it in {ENV_ALLOWED_LOADERS} (chart value {VALUE_LOADERS}) or the model in "
            f"{ENV_ALLOWED_FOREIGN_MODELS} ({VALUE_MODELS}) only for a model you trust"
        )
        if loader.module is None:
            return Verdict(
                LOADER_REFUSED,
                f"{what}: it has no {PYFUNC} loader (flavors {', '.join(loader.flavors)}); "
                f"list the model in {ENV_ALLOWED_FOREIGN_MODELS} ({VALUE_MODELS}) only for a model you trust",
            )
        if loader.module not in PLINTH_LOADERS:
            return Verdict(
                LOADER_REFUSED,
                f"{what}: its loader module {loader.module} is not plinth's and runs the model's own code when "
                f"loaded; {allow}",
            )
        if loader.ships_code:
            return Verdict(
                LOADER_REFUSED,
                f"{what}: it ships its own code (code/), which its loader module {loader.module} puts on the "
                f"import path; {allow}",
            )
        return None
