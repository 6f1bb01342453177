"""Inference: a loaded prompt applied to inputs (prediction, rank-classification scoring, mixed-prompt
batches), its encoding of inputs, the metrics and the prompt-design baselines."""
