"""Training and run directories: the trainer, stacked training, run directories (safetensors +
JSON), presets and releases. Built on `interp.core` and `interp.families`."""
