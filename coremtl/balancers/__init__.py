"""Multi-task loss and gradient balancers behind one interface (see ``base.Balancer``).

``make_balancer(name, task_names, **options)`` builds any of ``BALANCER_NAMES``; torchjd provides
all of them except GradNorm (``gradnorm.py``), and only ``torchjd_adapter.py`` imports torchjd.
"""

from coremtl.balancers.base import Balancer
from coremtl.balancers.registry import BALANCER_NAMES, balancer_options, make_balancer

__all__ = ["BALANCER_NAMES", "Balancer", "balancer_options", "make_balancer"]
