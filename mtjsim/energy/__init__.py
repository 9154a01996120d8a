"""Energy per operation from the solved ngspice waveforms."""
