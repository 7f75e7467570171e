"""aifactory: one declaration of an AI factory, planned, deployed and configured."""

__version__ = "0.1.0"
