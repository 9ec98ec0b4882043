"""Many runs: experiment files into a grid of runs, and the backends that train it (in process, a local pool, Ray)."""
