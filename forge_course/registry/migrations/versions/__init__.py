"""Revision files, one per schema change, oldest first."""
