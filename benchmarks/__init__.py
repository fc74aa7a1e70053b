"""Benchmarks: latency vs NME harness, peers, fidelity of converted files, reports and plots."""
