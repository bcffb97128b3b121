"""The catalogue: datasets published by stewards, their privacy-safe profiles, HealthDCAT-AP."""
