"""Plumbing shared by every Tawasul service; no service imports another service."""
