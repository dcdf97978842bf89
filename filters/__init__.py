"""Pure text logic: every filter scores documents and decides keep/reject. No Beam, no I/O."""
