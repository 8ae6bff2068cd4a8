"""LURE network modules (pure ``nn.Module``s; nothing here opens a file)."""

from lure.models.config import LUREConfig
from lure.models.lure_model import LURE, crop_to, pad_to_multiple, to_network_channels
from lure.models.text_encoder import SentenceEncoder, TextProjection

__all__ = ["LURE", "LUREConfig", "SentenceEncoder", "TextProjection", "crop_to", "pad_to_multiple",
           "to_network_channels"]
