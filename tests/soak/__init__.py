"""The fault-injection soak: mixed traffic against a crashing daemon and misbehaving modems."""
