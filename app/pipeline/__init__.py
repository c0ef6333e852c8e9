"""The cycle, one module per step: load → priors → train → suggest → review → export."""
