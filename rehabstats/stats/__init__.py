"""Estimators: survival (Kaplan-Meier, Aalen-Johansen, exact Poisson) and the mixed model."""
