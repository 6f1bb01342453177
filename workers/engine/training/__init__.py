"""Training: the loop that trains a bank of prompts, its members, budget and checkpoints, and the one call
from labelled rows to a finished artifact (`pipeline.train_task`)."""
