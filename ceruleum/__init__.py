"""Ceruleum: your own Azure OpenAI-style service on your own machines."""

__version__ = "0.1.0"
