"""Data contracts: table declarations, validation, reference data and the data dictionary."""
