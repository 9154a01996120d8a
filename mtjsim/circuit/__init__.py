"""Circuit description (plain data) of arrays and their periphery, and the one SPICE writer."""
