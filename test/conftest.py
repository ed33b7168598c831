"""Suite-wide settings."""

import torch

# The suite's tensors are tiny: with several OpenMP threads on a loaded 2-core machine, thread hand-offs cost
# more than the arithmetic (steps slow down 10x and more), so tests run single-threaded.
torch.set_num_threads(1)
