"""Sensors of bundle-promotion: deferrable waits on a workspace or on gates, one module each."""
