"""Data sets: loaders, cache and class-imbalance presets."""
