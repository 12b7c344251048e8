"""tap-manufacturing: a Singer tap over the pen factory's production databases."""
