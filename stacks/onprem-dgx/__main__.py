"""Pulumi program: plan factory.yaml (next to this file) and build one GpuPool per pool."""

from aifactory.components.program import run

run(__file__)
