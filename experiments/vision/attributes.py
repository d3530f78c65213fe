"""The binary attributes of CelebA and how the vision pipeline names their tasks and metrics.

CelebA (Liu, Luo, Wang and Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015) labels
every face with 40 binary attributes; :data:`CELEBA_ATTRIBUTES` lists them in the column order of
the official ``list_attr_celeba.txt``. A CelebA run has one binary task per chosen attribute, named
after it (``"Smiling"``). Its metric is ``"<name>/accuracy"``, and ``"attributes/mean_accuracy"``
(:data:`MEAN_ACCURACY`) summarises a split. Batches hold each attribute's ``(B,)`` labels in
``{0, 1}`` under its name (the task's target, as for the dense tasks) and all of them as one
``(B, K)`` tensor under :data:`ATTRIBUTES_KEY`, in the order of ``data.celeba.attributes``.
"""

from __future__ import annotations

from collections.abc import Sequence

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
ATTRIBUTES_KEY = "attributes"
MEAN_ACCURACY = "attributes/mean_accuracy"
_ATTRIBUTE_SET = frozenset(CELEBA_ATTRIBUTES)


def is_attribute_task(task: str) -> bool:
    """Whether ``task`` is one of the 40 CelebA attributes."""
    return task in _ATTRIBUTE_SET


def attribute_tasks(tasks: Sequence[str]) -> list[str]:
    """The attribute tasks among ``tasks``, in order (their label columns ``0, 1, ...``)."""
    return [task for task in tasks if is_attribute_task(task)]


def accuracy_key(attribute: str) -> str:
    """The metric name of one attribute's accuracy."""
    return f"{attribute}/accuracy"
