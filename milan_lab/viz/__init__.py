"""Visualisations as plain functions returning arrays or figures, shared by notebooks and the app."""
