"""Checkpoint folders: finding them (hub, built-in), reading and writing their files (weights tables, load, save),
new weights (init) and the presets `ved compose` starts from; safety checks on the folders ved writes."""
