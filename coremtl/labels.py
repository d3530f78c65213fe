"""The name of a built method, ablation or control, as tables and reports print it.

:func:`method_label` is the one place that says what a configuration of :func:`coremtl.build` is.
It starts with the method's name in :data:`coremtl.METHODS` (the name one passes to
:func:`coremtl.train`; there is no second spelling) and says in brackets what the options change:
``"mt-crl (no invariance)"`` for MT-CRL without environment labels (its invariance term needs
them; :mod:`coremtl.architectures.mtcrl` says why none are formed), the MT-CRL ablations
(``"mt-crl (no invariance, no decorrelation)"``), CORE-MTL's variants (``"core-mtl (authors'
weights: cityscapes)"``, ``"core-mtl (heads on Z_s and Z_r)"``) and the capacity controls
(``"ew (capacity of mt-crl)"``). :attr:`coremtl.preset.Preset.label` holds it for every preset.
"""

from __future__ import annotations

from coremtl.architectures.mtcrl import MTCRLOptions


def method_label(
    method: str,
    *,
    balancer: str = "ew",
    environment_key: str | None = None,
    mtcrl: MTCRLOptions | None = None,
    weights: str = "library",
    authors_config: str = "cityscapes",
    heads_on: str = "semantic",
    grounding: str = "soft",
    capacity_of: str | None = None,
    independence: str = "unconditional",
    without: tuple[str, ...] = (),
) -> str:
    """The label of ``method`` built with these :func:`coremtl.build` options."""
    name = method
    details: list[str] = []
    if method == "mt-crl":
        if environment_key is None:
            details.append("no invariance")
        details.extend((mtcrl or MTCRLOptions()).ablations())
    if method == "core-mtl":
        if balancer != "ew":
            name = f"{name} + {balancer}"
        if weights != "library":
            relative = ", relative to the tasks" if weights == "authors-relative" else ""
            details.append(f"authors' weights: {authors_config}{relative}")
        if heads_on == "both":
            details.append("heads on Z_s and Z_r")
        if grounding == "none":
            details.append("no grounding")
        if grounding == "hard":
            details.append("hard grounding")
        if independence == "conditional":
            details.append("label-conditional CKA")
        if independence == "none":
            details.append("no independence term")
        if without:
            details.append(
                f"without {', '.join(term.upper() if term != 'reconstruction' else term for term in without)}"
            )
    if capacity_of is not None:
        control = f"capacity of {capacity_of}"
        if capacity_of == "core-mtl" and heads_on == "both":
            control += " with heads on Z_s and Z_r"
        if capacity_of == "mt-crl" and mtcrl is not None and mtcrl.modules != MTCRLOptions.modules:
            control += f" with {mtcrl.modules} module(s)"
        details.append(control)
    return f"{name} ({', '.join(details)})" if details else name
