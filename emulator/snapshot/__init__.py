"""`8here-emulator snapshot`: mirror a target's sample data into a fixture folder."""
