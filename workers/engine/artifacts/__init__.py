"""Artifacts: the prompt file (safetensors), its PEFT import and export, and what a version shows of it."""
