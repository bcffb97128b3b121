"""The public observatory: who uses which data for what, and how long access takes."""
