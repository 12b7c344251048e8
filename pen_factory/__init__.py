"""Operations around the pen factory pipeline: embedded PostgreSQL, demo data, the demo run."""
