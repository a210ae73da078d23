"""Training plumbing shared by teacher training and amalgamation: checkpoints, phases."""
