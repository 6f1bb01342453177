"""The serving pool: queue consumers with one frozen model each, mixed-prompt dynamic batches, a prompt cache.

No Django here. The platform reaches the pool through Redis (`common/contracts.py` names the keys) or,
on the embedded defaults, through `workers.serving.local` in its own process.
"""
