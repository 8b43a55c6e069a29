"""What every embedder provides to the tracker: per-pixel embeddings on a strided grid."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Embedder(Protocol):
    """Maps RGB frames to embeddings compared by dot product.

    stride: input pixels per feature cell; ``encode`` is called with H and W divisible by it.
    """

    stride: int

    def encode(self, frames: Tensor) -> Tensor:
        """frames: (T, 3, H, W) RGB in [0, 1]. Returns (T, C, H / stride, W / stride)."""
        ...
