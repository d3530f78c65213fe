"""Multi-task loss and gradient balancers behind one interface (see ``base.Balancer``).

``make_balancer(name, task_names, **options)`` builds any of ``BALANCER_NAMES``, the names of the
one registry (``registry.BALANCERS``). torchjd provides the aggregator or scalarizer of every
method except GradNorm (``gradnorm.py``): ``aggregators.py`` and ``scalarizers.py`` hold the
methods that need nothing beyond their torchjd object, and each method with behaviour of its own
has its module (``nashmtl.py``, ``gradvac.py``, ``famo.py``, ``dwa.py``, ``uw.py``).
"""

from coremtl.balancers.base import Balancer
from coremtl.balancers.registry import BALANCER_NAMES, BALANCERS, balancer_options, make_balancer

__all__ = ["BALANCERS", "BALANCER_NAMES", "Balancer", "balancer_options", "make_balancer"]
