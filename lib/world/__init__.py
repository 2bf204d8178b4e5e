"""The seeded synthetic travel market used as demo data (generate_world)."""
