"""The two measurement protocols of protocol.md ("Two protocols"), named once.

``paper`` is the reference code's protocol, exactly: per-seed splits, torchvision's
``Resize(224)`` + ``CenterCrop(224)`` and ``RandomResizedCrop(224)`` on the whole image,
ImageNet mean/std, LayerNorm eps 1e-12, a PyTorch-default head, fp32, the reference's
plasticity pairing and the ``lp`` baseline. ``clean`` (the default) is ours, with the
reference's flaws fixed. A suite names one (``protocol:``); it enters every job's
configuration (``config["protocol"]``), hence its id and its record.

Torch-free: suites validate against these names.
"""

from __future__ import annotations

PAPER_PROTOCOL, CLEAN_PROTOCOL = "paper", "clean"
PROTOCOLS: tuple[str, ...] = (PAPER_PROTOCOL, CLEAN_PROTOCOL)
DEFAULT_PROTOCOL = CLEAN_PROTOCOL  # of a suite without `protocol:`

# The paper protocol's fixed facts (protocol.md, `paper` bullets).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYER_NORM_EPS = 1e-12  # the Hugging Face checkpoints' value the reference loads
EVAL_CROP_PCT = 1.0  # Resize(size) then CenterCrop(size): nothing cut beyond the square
EVAL_INTERPOLATION = "bilinear"  # torchvision's Resize default, on the PIL image
PRECISION = "fp32"  # no autocast, no TF32
# Recipe keys whose value the paper protocol fixes: {key: the only value it accepts}.
FIXED_RECIPE = {"precision": PRECISION}
# Recipe keys that mean nothing under the paper protocol (its splits follow the run seed).
UNUSED_RECIPE = ("split_seed",)

# The reference's linear probe (apps/vit/linear_probing.py): its training loader shuffles
# and drops the incomplete last batch of 512, so the probe trains on that many fewer images.
LP_BATCH = 512
LP_MAX_ITER = 5000

# Training images of folder datasets are kept whole (every pixel of the decoded image can be
# in a random-resized crop) but stored at this side, squeezed to a square; the crop box is
# drawn on the original width and height and mapped onto the stored copy (README: deviation).
TRAIN_STORE_SIDE = 256
