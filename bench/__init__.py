"""Benchmarks: the fan-out of one alert end to end (`bench.fanout`) and audience resolution."""
