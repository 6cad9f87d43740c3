"""`gate test`: policy unit tests written in YAML next to the policies (`tests/*.gate-test.yaml`)."""
