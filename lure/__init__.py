"""LURE: degradation-aware infrared/visible image fusion through a unified latent space.

Conventions used throughout the package:

* images are ``float32`` tensors in ``[0, 1]``, shape ``(B, C, H, W)``;
* the network sees three channels for both modalities (RGB visible; infrared and grey
  visible images are repeated to three channels);
* modality ids: ``0`` = visible, ``1`` = infrared (:mod:`lure.text.vocabulary`).
"""

__version__ = "0.1.0"
