"""One run, resumable: the config schema, the datasets, the training loop and its checkpoints."""
