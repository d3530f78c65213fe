import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch

# pytest runs with two xdist workers on two cores: one intra-op thread per worker avoids
# oversubscription, which slows small backward passes by two orders of magnitude.
torch.set_num_threads(1)

from hypothesis_profiles import load_profile_from_environment  # noqa: E402

load_profile_from_environment()
