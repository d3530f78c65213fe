"""One name per method: the names of :data:`METHODS`, and the older spellings read as aliases.

Every method has one name, the one :func:`coremtl.build` and :func:`coremtl.train` take, tables
print (:func:`coremtl.labels.method_label`) and configs hold: ``core-mtl``, ``mtan``, ``rep-mtl``,
``mt-crl``, ``single-task`` and the balancer names of :data:`coremtl.balancers.BALANCER_NAMES`
(``ew``, ``pcgrad``, ...: hard parameter sharing trained by that balancer).

Older spellings are accepted wherever a method name is read (:func:`coremtl.build`, the vision
config's ``model.kind``, the command line), in any letter case, and replaced by the name:

=============================================  ==================================
alias                                          name
=============================================  ==================================
``coremtl``, ``CORE-MTL``                      ``core-mtl``
``mtcrl``, ``MT-CRL``                          ``mt-crl``
``repmtl``, ``Rep-MTL``                        ``rep-mtl``
``single``                                     ``single-task``
``MTAN``, ``EW``, ``PCGrad``, ... (any case)   ``mtan``, ``ew``, ``pcgrad``, ...
=============================================  ==================================
"""

from __future__ import annotations

from coremtl.balancers.registry import BALANCER_NAMES
from scm.validation import InvalidParameterError

ARCHITECTURE_METHODS = ("core-mtl", "mtan", "rep-mtl", "mt-crl", "single-task")
"""The methods that change the model or add terms (each with its default balancer, EW)."""
METHODS: tuple[str, ...] = (*ARCHITECTURE_METHODS, *BALANCER_NAMES)
"""Every method's one name."""
ALIASES = {"coremtl": "core-mtl", "mtcrl": "mt-crl", "repmtl": "rep-mtl", "single": "single-task"}
"""Older spellings (lower case) and the name each stands for."""


def canonical_method(name: object, parameter: str = "method") -> str:
    """The name in :data:`METHODS` of ``name``, given as that name or an alias in any letter
    case; anything else is one line naming ``parameter`` and the names it takes."""
    if isinstance(name, str):
        key = name.strip().lower()
        if key in METHODS:
            return key
        if key in ALIASES:
            return ALIASES[key]
    raise InvalidParameterError(f"{parameter}: expected one of {', '.join(METHODS)}, got {name!r}")
