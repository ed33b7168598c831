"""Datasets and the built-in procedural stereo world."""
