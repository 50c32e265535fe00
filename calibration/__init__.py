"""int8 calibration data: which photos calibrate the exported files and which measure them,
and where photos come from (the research data folders, or scikit-image's sample pictures).
Torch-free. (The device-tier probe and the tiers are runtimes/probe.py and runtimes/tiers.py.)"""
