"""Data package: the checkpoint registry and the small model this project ships.

Installed as `resshift_weights` so `pip install` users have the registry too.
"""
