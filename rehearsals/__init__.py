"""Rehearsals: what runs in AWS, run here for real against local counterparts."""
