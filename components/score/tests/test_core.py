"""The score step's process keeps a chunk's freed arrays for the next chunk instead of faulting them in again."""

from __future__ import annotations

import resource

import numpy as np

from components.score.core import keep_freed_memory


def _page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_a_chunk_sized_array_freed_is_reused_without_page_faults():
    assert keep_freed_memory()  # glibc took both settings
    block = np.ones(3_000_000)  # a 100,000 x 30 float64 chunk's block: 24 MB
    del block
    before = _page_faults()
    again = np.ones(3_000_000)
    assert _page_faults() - before < 50  # mapped fresh, 24 MB fault in again: hundreds to thousands of faults
    assert again.sum() == 3_000_000
