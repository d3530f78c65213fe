"""The parts of a method that a caller of :func:`coremtl.build` may bring instead of the library's.

:func:`coremtl.build` decides what each method is made of: which model around the backbone, which
streams, which terms from which epoch (:mod:`coremtl.schedule`), which balancer. The layers it
puts on the backbone are the library's, fitted to its sizes (:mod:`coremtl.backbones`,
:mod:`coremtl.heads`). A pipeline with layers of its own passes them as :class:`Parts` (the vision
pipeline: DeepLab heads upsampling by the output stride, the physics renderer or an AdaIN decoder
for grounding, one fused head for many attributes, the skip-connection ablation):

- ``heads(width)``: the task heads on features of ``width`` channels, for every method (default:
  :func:`coremtl.backbones.library_heads`);
- ``decoder(semantic, residual, heads)``: CORE-MTL's grounding decoder from the stream widths and
  the task heads (a decoder may share one, as hard grounding shares the surface-normal head), or
  None (default: the soft decoder of ``grounding``);
- ``grounding_terms(decoder, objective)``: the grounding stage's term source for that decoder, or
  None for the objective's L1 reconstruction (:data:`coremtl.schedule.GroundingTerms`);
- ``dual_stream(encoder, split, heads, decoder)``: CORE-MTL's model (default
  :class:`coremtl.representation.DualStreamModel`, or ``BothStreamsModel`` for ``heads_on="both"``);
- ``shared_bottom(trunk, heads)``: the hard-sharing model of the balancers and Rep-MTL (default
  :class:`coremtl.architectures.shared_bottom.SharedBottom`);
- ``regularizer``: the term source of Rep-MTL or MT-CRL (default: the method's, from
  ``mtcrl`` and ``environment_key`` for MT-CRL), trained from the task stage on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from coremtl.backbones import HeadsFactory
from coremtl.schedule import GroundingTerms
from coremtl.terms import TermSource

DecoderFactory = Callable[[int, int, nn.Module], nn.Module | None]
"""``(semantic width, residual width, heads) -> decoder or None``."""


@dataclass(frozen=True)
class Parts:
    """Optional replacements of the library's layers and terms (module docstring); every field
    left as None is the library's."""

    heads: HeadsFactory | None = None
    decoder: DecoderFactory | None = None
    grounding_terms: GroundingTerms | None = None
    dual_stream: Callable[..., nn.Module] | None = None
    shared_bottom: Callable[..., nn.Module] | None = None
    regularizer: TermSource | None = None
