"""Pipeline steps of plinth: one folder per step, each a thin KFP shell over a plain-Python core."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("plinth")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

# The image every component runs in on a cluster (built from components/Dockerfile). Its tag follows the
# package version, so compiled pipelines, chart appVersion and overlay pins move together.
COMPONENT_IMAGE = f"ghcr.io/plinth-mlops/plinth-components:{__version__}-python3.11"
