"""Pick the compute device a training step finds: CUDA when a GPU is visible, else CPU."""

from __future__ import annotations


def cuda_available() -> bool:
    """Return True when PyTorch sees a CUDA device (the GPU node pool gives the pod one)."""
    import torch

    return bool(torch.cuda.is_available())
