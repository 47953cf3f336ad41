"""The service layer: turns requests into committed decisions (the sequencer) and wires the parts."""
