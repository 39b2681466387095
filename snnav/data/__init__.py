"""Datasets for snnav: the embedded AV-Digits dataset, loaders for real audio-visual datasets, and encoders."""
