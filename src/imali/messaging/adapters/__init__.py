"""Outside systems behind a Protocol: the SMS transport and its SMPP implementation."""
