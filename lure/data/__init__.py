"""Data loading for training and evaluation: WebDataset shard loaders and paired augmentation."""

from lure.data.loaders import (
    fusion_loader,
    iter_degraded_pairs,
    iter_fusion_pairs,
    iter_stage1_samples,
    shard_urls,
    stage1_loader,
)

__all__ = ["fusion_loader", "iter_degraded_pairs", "iter_fusion_pairs", "iter_stage1_samples", "shard_urls",
           "stage1_loader"]
