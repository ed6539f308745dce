"""Data contracts: table declarations, validation, reference data, the data dictionary, and the outcomes riskstrat
predicts (`outcomes`: each declared once, with the definitions' parameters, for every layer and the generator)."""
