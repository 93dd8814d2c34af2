"""The demo: `demo_source` (source.py) replays a rendered object as a camera with orbiting targets, and
`make demo` (sweep.py, run as `python -m tinyldm_ros.demo`) drives nvs_node with it end to end."""
