"""Settings for the whole test process."""

import torch._inductor.config

# inductor compiles in the test process itself: no pool of compile workers (and its reader threads) started by
# one test and left running under every later one (the benchmark's compiled rows compile in-process)
torch._inductor.config.compile_threads = 1
